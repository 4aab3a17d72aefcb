"""Full training-state checkpoints.

One file, ``state.pt``, in a checkpoint directory holds everything needed to continue a run
bit-for-bit on the same device: model, optimiser, LR scheduler (including a plateau scheduler's
patience counters), AMP grad scaler, the epoch just finished, the best metric so far, the RNG
states of Python, NumPy, torch (and every CUDA device), and a trainer-specific ``extra`` dict.
The optimiser's parameters are also recorded by name (``optimizer_param_names``, one list per
group), so :func:`load_optimizer_state` can carry each parameter's state (momentum, Adam moments)
into an optimiser whose groups differ from the saved one -- a PBT exploit that mutates
weight decay or layer decay regroups the parameters.
Files are written to a temporary name and ``os.replace``d, so a crash never leaves a torn
checkpoint. Loading uses ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from trainers.errors import TrainerError

__all__ = [
    "STATE_FILE",
    "capture_rng_state",
    "restore_rng_state",
    "scheduler_state",
    "load_scheduler_state",
    "save_checkpoint",
    "load_checkpoint",
    "load_optimizer_state",
    "optimizer_param_names",
    "atomic_save",
]

STATE_FILE = "state.pt"


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch CPU and CUDA RNG states (weights-only-loadable types)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    state = _to_cpu(state)
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def scheduler_state(scheduler) -> dict[str, Any] | None:
    """State of a timm scheduler; for a plateau scheduler also its inner ReduceLROnPlateau
    (timm's own state_dict drops the patience counters)."""
    if scheduler is None:
        return None
    state = {"timm": scheduler.state_dict()}
    inner = getattr(scheduler, "lr_scheduler", None)
    if inner is not None and hasattr(inner, "state_dict"):
        state["inner"] = inner.state_dict()
    return state


def load_scheduler_state(scheduler, state: dict[str, Any] | None) -> None:
    if scheduler is None or state is None:
        return
    scheduler.load_state_dict(state["timm"])
    inner = getattr(scheduler, "lr_scheduler", None)
    if inner is not None and "inner" in state:
        inner.load_state_dict(state["inner"])


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def optimizer_param_names(
    optimizer: torch.optim.Optimizer, named_parameters: Iterable[tuple[str, torch.nn.Parameter]]
) -> list[list[str | None]]:
    """The name of every optimiser parameter, one list per param group (``None`` for a
    parameter not among ``named_parameters``)."""
    names = {id(p): n for n, p in named_parameters}
    return [[names.get(id(p)) for p in g["params"]] for g in optimizer.param_groups]


def save_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    scaler=None,
    epoch: int,
    best_metric: float | None = None,
    extra: dict[str, Any] | None = None,
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]] | None = None,
) -> Path:
    """Write the full training state to ``directory/state.pt``; returns the file path.

    ``epoch`` is the number of epochs completed. RNG states are captured at call time, so call
    it at the point the run would continue from. ``named_parameters`` names the optimiser's
    parameters (default ``model.named_parameters()``; pass more when the optimiser also trains
    parameters outside ``model``).
    """
    if named_parameters is None:
        named_parameters = model.named_parameters()
    state = {
        "format": 1,
        "epoch": int(epoch),
        "best_metric": None if best_metric is None else float(best_metric),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "optimizer_param_names": (optimizer_param_names(optimizer, named_parameters)
                                  if optimizer is not None else None),
        "scheduler": scheduler_state(scheduler),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": capture_rng_state(),
        "extra": extra or {},
    }
    return atomic_save(state, Path(directory) / STATE_FILE)


def read_checkpoint(directory: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """The raw state dict of a checkpoint directory (or a ``state.pt`` path)."""
    path = Path(directory)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise TrainerError(f"no checkpoint at {path} (expected a directory holding {STATE_FILE})")
    return torch.load(path, map_location=map_location, weights_only=True)


def load_checkpoint(
    directory: str | os.PathLike,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    scaler=None,
    map_location: Any = "cpu",
    restore_rng: bool = True,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into the given objects (built the same way as when it was saved).

    Returns ``{"epoch", "best_metric", "extra", "optimizer"}``; ``"optimizer"`` says how the
    optimiser state was restored (see :func:`load_optimizer_state`). RNG states are restored
    last when ``restore_rng`` is true. Pass ``state`` if :func:`read_checkpoint` already read it.
    """
    if state is None:
        state = read_checkpoint(directory, map_location=map_location)
    model.load_state_dict(state["model"])
    how = None
    if optimizer is not None:
        how = load_optimizer_state(optimizer, state, model.named_parameters())
    if scheduler is not None:
        load_scheduler_state(scheduler, state.get("scheduler"))
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    if restore_rng and state.get("rng") is not None:
        restore_rng_state(state["rng"])
    return {"epoch": state["epoch"], "best_metric": state.get("best_metric"),
            "extra": state.get("extra", {}), "optimizer": how}


def _state_like(value: Any, param: torch.Tensor, key: str) -> Any:
    """An optimiser state value moved next to ``param`` the way ``Optimizer.load_state_dict``
    does: floating tensors take the parameter's dtype and device; ``step`` stays as saved."""
    if not isinstance(value, torch.Tensor) or key == "step":
        return value
    if param.is_floating_point() and value.is_floating_point():
        return value.to(dtype=param.dtype, device=param.device)
    return value.to(device=param.device)


def load_optimizer_state(
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]],
) -> str | None:
    """Restore a checkpoint's optimiser state into ``optimizer``; returns how:

    - ``"exact"``: the groups hold the same parameters as when saved (by name, or -- for a
      checkpoint without names -- by group sizes): ``optimizer.load_state_dict``, which also
      loads the saved group hyperparameters (lr, weight decay, ...).
    - ``"by-name"``: the grouping differs (weight decay switched on/off, layer decay changed,
      a different trainable set): each parameter's state (momentum buffer, Adam moments, step)
      is copied by parameter name; the groups keep ``optimizer``'s own hyperparameters.
      Parameters new to the optimiser start with empty state.
    - ``"fresh"``: nothing can be mapped (another optimiser class, or a checkpoint without
      parameter names whose groups differ): the optimiser state stays empty.
    - ``None``: the checkpoint holds no optimiser state.
    """
    saved = state.get("optimizer")
    if saved is None:
        return None
    saved_class = state.get("optimizer_class")
    if saved_class is not None and saved_class != type(optimizer).__name__:
        return "fresh"
    saved_names = state.get("optimizer_param_names")
    if saved_names is None:
        sizes = [len(g["params"]) for g in saved["param_groups"]]
        if sizes == [len(g["params"]) for g in optimizer.param_groups]:
            optimizer.load_state_dict(saved)
            return "exact"
        return "fresh"
    current = optimizer_param_names(optimizer, named_parameters)
    if current == saved_names:
        optimizer.load_state_dict(saved)
        return "exact"
    by_name: dict[str, Any] = {}
    for group, names in zip(saved["param_groups"], saved_names):
        for pid, name in zip(group["params"], names):
            if name is not None and pid in saved["state"]:
                by_name[name] = saved["state"][pid]
    for group, names in zip(optimizer.param_groups, current):
        for p, name in zip(group["params"], names):
            entry = by_name.get(name) if name is not None else None
            if entry is not None and all(
                not isinstance(v, torch.Tensor) or v.ndim == 0 or v.shape == p.shape
                for v in entry.values()
            ):
                optimizer.state[p] = {k: _state_like(v, p, k) for k, v in entry.items()}
    return "by-name"
