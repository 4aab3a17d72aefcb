"""Objectives for architecture search: size, compute, latency, rewards and Pareto fronts.

Conventions
-----------
- ``count_params`` counts every parameter element (``sum(p.numel())``), trainable or not.
- ``count_flops`` uses :class:`torch.utils.flop_counter.FlopCounterMode`, which counts a
  multiply-accumulate as **2 FLOPs** (a ``Linear(i, o)`` on one sample is ``2*i*o`` FLOPs; a
  ``Conv2d`` is ``2 * H_out * W_out * C_out * (C_in / groups) * k_h * k_w``). Bias additions,
  activations, pooling and normalisation are not counted. Divide by 2 for MACs.
- ``measure_latency`` times a batch of one in eval mode under ``torch.inference_mode``: some
  warm-up calls, then the **median** of repeated timed calls, in milliseconds (``stat="min"``:
  the fastest call, the least disturbed by other work on a loaded machine). On CUDA the device
  is synchronised around each call.

Rewards (MnasNet, Tan et al. 2019, and the Vertex AI NAS latency-constrained reward)
------------------------------------------------------------------------------------
- soft:  ``acc * (target / latency) ** w``      (w = 0.07 by default). This is MnasNet's
  ``ACC * (LAT / T) ** w`` with ``w = alpha = beta = -0.07``: it rewards models faster than the
  target a little and penalises slower ones smoothly (a negative exponent on LAT / T).
- hard:  ``acc * min(target / latency, 1)``     (no bonus under the target, linear penalty over).
- :func:`mnasnet_reward` exposes MnasNet's general form with separate exponents ``alpha``
  (used when latency <= target) and ``beta`` (latency > target).
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainers.errors import TrainerError

__all__ = [
    "count_flops",
    "count_params",
    "dominates",
    "hard_reward",
    "measure_latency",
    "mnasnet_reward",
    "model_objectives",
    "pareto_front",
    "reward",
    "soft_reward",
]


LATENCY_STATS = ("median", "min")


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements of ``model`` (all of them unless ``trainable_only``)."""
    return int(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))


def _example_input(input_shape: Sequence[int] | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    if isinstance(input_shape, torch.Tensor):
        return input_shape.to(device)
    return torch.randn(*input_shape, device=device)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def count_flops(model: nn.Module, input_shape: Sequence[int] | torch.Tensor = (1, 3, 224, 224)) -> int:
    """FLOPs (2 per multiply-accumulate) of one forward pass of ``model`` on ``input_shape``.

    ``input_shape`` includes the batch dimension (use 1 for per-image FLOPs) or is an example
    tensor. The model is run in eval mode without gradients; its training flag is restored.
    """
    from torch.utils.flop_counter import FlopCounterMode

    x = _example_input(input_shape, _model_device(model))
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int] | torch.Tensor = (1, 3, 224, 224),
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
    stat: str = "median",
) -> float:
    """Median (or minimum) wall-clock latency in milliseconds of one forward pass (batch 1 by
    default).

    Args:
        model: the network; it is moved to ``device`` if given, run in eval mode and its
            training flag is restored afterwards.
        input_shape: input shape including the batch dimension, or an example tensor.
        device: where to time it (``None``: where the model's parameters live).
        warmup: untimed calls before timing (>= 0).
        repeats: timed calls (>= 1); the median is returned.
        stat: ``"median"``, or ``"min"`` for the fastest timed call (steadier when other
            processes share the CPU: their interference only ever adds time).
    """
    if stat not in LATENCY_STATS:
        raise TrainerError(f"latency stat must be one of {', '.join(LATENCY_STATS)}, "
                           f"got {stat!r}")
    if repeats < 1:
        raise TrainerError(f"repeats must be >= 1, got {repeats}")
    if warmup < 0:
        raise TrainerError(f"warmup must be >= 0, got {warmup}")
    dev = torch.device(device) if device is not None else _model_device(model)
    if device is not None:
        model = model.to(dev)
    x = _example_input(input_shape, dev)
    cuda = dev.type == "cuda"
    was_training = model.training
    model.eval()
    times: list[float] = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                if cuda:
                    torch.cuda.synchronize(dev)
                start = time.perf_counter()
                model(x)
                if cuda:
                    torch.cuda.synchronize(dev)
                times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(was_training)
    return float(statistics.median(times) if stat == "median" else min(times))


def _check_reward_args(latency: float, target: float) -> None:
    if not (target > 0 and math.isfinite(target)):
        raise TrainerError(f"latency target must be a positive finite number, got {target!r}")
    if not latency > 0:
        raise TrainerError(f"latency must be positive, got {latency!r}")


def soft_reward(accuracy: float, latency: float, target: float, w: float = 0.07) -> float:
    """MnasNet soft reward ``accuracy * (target / latency) ** w``."""
    _check_reward_args(latency, target)
    return float(accuracy * (target / latency) ** w)


def hard_reward(accuracy: float, latency: float, target: float) -> float:
    """Hard-constrained reward ``accuracy * min(target / latency, 1)``."""
    _check_reward_args(latency, target)
    return float(accuracy * min(target / latency, 1.0))


def mnasnet_reward(
    accuracy: float, latency: float, target: float, alpha: float = -0.07, beta: float = -0.07
) -> float:
    """MnasNet's general reward ``accuracy * (latency / target) ** w``.

    ``w = alpha`` when ``latency <= target`` else ``beta``. ``alpha = beta = -0.07`` is the soft
    reward; ``alpha = 0, beta = -1`` is the hard constraint.
    """
    _check_reward_args(latency, target)
    w = alpha if latency <= target else beta
    return float(accuracy * (latency / target) ** w)


def reward(accuracy: float, latency: float, target: float, kind: str = "soft", w: float = 0.07) -> float:
    """Latency-aware reward by name: ``kind`` is ``"soft"`` or ``"hard"``."""
    kind = kind.lower()
    if kind == "soft":
        return soft_reward(accuracy, latency, target, w)
    if kind == "hard":
        return hard_reward(accuracy, latency, target)
    raise TrainerError(f"reward kind must be 'soft' or 'hard', got {kind!r}")


def _objective_modes(objectives: Mapping[str, str] | Iterable[Any]) -> list[tuple[str, float]]:
    """Normalise objectives to ``[(name, sign)]`` where sign +1 maximises and -1 minimises."""
    if isinstance(objectives, Mapping):
        items = list(objectives.items())
    else:
        items = []
        for obj in objectives:
            if isinstance(obj, str):
                items.append((obj, "max"))
            else:
                name, mode = obj
                items.append((name, mode))
    if not items:
        raise TrainerError("pareto_front needs at least one objective")
    out = []
    for name, mode in items:
        if mode not in ("max", "min"):
            raise TrainerError(f"objective {name!r}: mode must be 'max' or 'min', got {mode!r}")
        out.append((name, 1.0 if mode == "max" else -1.0))
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True if ``a`` is at least as good as ``b`` everywhere and better somewhere (maximising)."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_front(
    points: Sequence[Mapping[str, Any]], objectives: Mapping[str, str] | Iterable[Any]
) -> list[Mapping[str, Any]]:
    """The non-dominated points, in their input order.

    Args:
        points: trial results (dicts of metrics).
        objectives: ``{"val_acc": "max", "latency_ms": "min"}``, or a list of names (maximised)
            or ``(name, mode)`` pairs.

    Points missing an objective or with a non-finite value are ignored. Duplicated points that
    are not dominated are all kept.

    Example:
        >>> pts = [{"acc": 0.9, "lat": 5}, {"acc": 0.8, "lat": 3}, {"acc": 0.7, "lat": 4}]
        >>> pareto_front(pts, {"acc": "max", "lat": "min"})
        [{'acc': 0.9, 'lat': 5}, {'acc': 0.8, 'lat': 3}]
    """
    modes = _objective_modes(objectives)
    vectors: list[tuple[int, tuple[float, ...]]] = []
    for i, p in enumerate(points):
        try:
            vec = tuple(sign * float(p[name]) for name, sign in modes)
        except (KeyError, TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in vec):
            vectors.append((i, vec))
    front = [
        i for i, v in vectors if not any(dominates(w, v) for j, w in vectors if j != i)
    ]
    return [points[i] for i in front]


def model_objectives(
    model: nn.Module,
    input_shape: Sequence[int] = (1, 3, 224, 224),
    latency: bool = True,
    device: torch.device | str | None = None,
    warmup: int = 3,
    repeats: int = 10,
) -> dict[str, float]:
    """``{"params", "flops", "latency_ms"}`` of ``model`` for a batch-1 input of ``input_shape``."""
    out: dict[str, float] = {
        "params": count_params(model),
        "flops": count_flops(model, input_shape),
    }
    if latency:
        out["latency_ms"] = measure_latency(model, input_shape, device, warmup, repeats)
    return out
