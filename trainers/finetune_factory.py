"""Pure ``create_*`` helpers the fine-tuning trainer is assembled from (timm style: each takes
the config and what it needs, and returns the built object; none reads the trainer's state).

- :func:`create_model`: the timm model at the size :func:`trainers.model_fit.fit_model` chose,
  with pretrained weights (timm hub, or a local checkpoint through timm's own loader so position
  embeddings are resampled), and Co-Tuning's :class:`~trainers.regularizers.SourceHead`;
- :func:`create_data`: datasets (timm's train / eval pipelines) and loaders;
- :func:`create_criterion`: loss and Mixup/CutMix;
- :func:`create_amp`: autocast dtype and GradScaler;
- :func:`create_regularizers`: L2-SP, DELTA and Co-Tuning from the starting weights;
- :func:`config_notes`: settings that silently do less than asked, as warnings and metric flags.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from trainers.errors import TrainerError

from .config import TrainerConfig
from .model_fit import ModelFit
from .runtime import resolve_device, seed_everything

__all__ = [
    "DataBundle",
    "Regularizers",
    "config_notes",
    "create_amp",
    "create_criterion",
    "create_data",
    "create_model",
    "create_regularizers",
    "load_state_dict",
    "resolve_device",
    "seed_everything",
]


def configure_determinism(deterministic: bool, device: torch.device) -> bool:
    """Set torch's deterministic mode (and cuDNN benchmarking); returns the previous mode."""
    previous = torch.are_deterministic_algorithms_enabled()
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return previous


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A weights-only state dict from a file (``.safetensors`` or a torch file holding a state
    dict, or one under ``state_dict``/``model``/``model_state_dict``) or a folder holding one."""
    p = Path(path).expanduser()
    if p.is_dir():
        names = ("state.pt", "model.safetensors", "model.pt", "pytorch_model.bin", "checkpoint.pt")
        p = next((p / n for n in names if (p / n).is_file()), p)
    if not p.is_file():
        raise TrainerError(f"pretrained: checkpoint {str(path)!r} not found")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainerError(f"pretrained: cannot read {str(p)!r} as a weights-only checkpoint: "
                           f"{exc}") from exc
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise TrainerError(f"pretrained: {str(p)!r} holds no state_dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _source_classes(cfg: TrainerConfig, fit: ModelFit, state: dict[str, torch.Tensor]) -> int:
    """Number of classes of a checkpoint's classifier (read from the head's weight)."""
    import timm

    from .freezing import head_parameter_names

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = timm.create_model(cfg.model, pretrained=False, **fit.create_kwargs)
    for name in sorted(head_parameter_names(probe)):
        if name.endswith("weight") and name in state:
            return int(state[name].shape[0])
    return int(probe.num_classes)


def create_model(cfg: TrainerConfig, fit: ModelFit) -> tuple[nn.Module, nn.Module | None]:
    """``(model, source_head)``: the timm model built as ``fit`` says, with pretrained weights as
    configured, and the pretrained head (a :class:`~trainers.regularizers.SourceHead`) when there
    is one. The head is *not* yet sized to the target task (:func:`create_data` tells the class
    count). A local checkpoint goes through timm's loader (``pretrained_cfg_overlay``), so the
    model's checkpoint filter resamples position embeddings to the built size.

    Raises:
        TrainerError: the checkpoint does not fit the model.
    """
    import timm

    from .regularizers import SourceHead

    kwargs: dict[str, Any] = {"drop_rate": cfg.drop, **fit.create_kwargs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # timm's deprecated-name notices
        if isinstance(cfg.pretrained, str):
            state = load_state_dict(cfg.pretrained)
            classes = _source_classes(cfg, fit, state)
            try:
                model = timm.create_model(
                    cfg.model, pretrained=True, num_classes=classes,
                    pretrained_cfg_overlay={"state_dict": state, "num_classes": classes}, **kwargs)
            except RuntimeError as exc:
                raise TrainerError(f"pretrained: {cfg.pretrained!r} does not match timm model "
                                   f"{cfg.model!r}: {str(exc).splitlines()[0][:300]}") from exc
        elif cfg.pretrained is True:
            model = timm.create_model(cfg.model, pretrained=True, **kwargs)
        else:
            if cfg.num_classes is not None:
                kwargs["num_classes"] = cfg.num_classes
            model = timm.create_model(cfg.model, pretrained=False, **kwargs)
    source_head = SourceHead(model) if cfg.pretrained is not False and model.num_classes else None
    return model, source_head


@dataclass(frozen=True)
class DataBundle:
    """What :func:`create_data` builds."""

    train_ds: Dataset
    val_ds: Dataset
    plain_train_ds: Dataset  # the training images through the eval pipeline (Co-Tuning's R)
    num_classes: int
    train_loader: DataLoader
    val_loader: DataLoader
    eval_batch_size: int


def create_data(cfg: TrainerConfig, model: nn.Module, fit: ModelFit, device: torch.device,
                seed: int) -> DataBundle:
    """Datasets and loaders: timm's training pipeline (with the configuration's augmentation op,
    ``train_crop_scale`` and ``train_hflip``) and the model's evaluation pipeline, both at
    ``fit.input_size``.

    Raises:
        TrainerError: unknown dataset, missing files, or ``num_classes`` disagreeing with the data.
    """
    from . import data
    from .transforms import create_eval_transform, create_train_transform, resolve_data_config

    dc = resolve_data_config(model)
    side = fit.input_size
    train_tf = create_train_transform(side, dc, cfg.to_dict(), crop_scale=cfg.train_crop_scale,
                                      hflip=cfg.train_hflip)
    eval_tf = create_eval_transform(side, dc)
    data_cfg = data.DataConfig(
        dataset=cfg.dataset, data_dir=cfg.data_dir, download=cfg.download,
        data_fraction=cfg.data_fraction, image_size=int(cfg.image_size or side),
        val_fraction=cfg.val_fraction, seed=0, num_workers=cfg.num_workers,
        batch_size=cfg.batch_size, eval_batch_size=cfg.eval_batch_size)
    train_ds, val_ds, num_classes = data.build_datasets(data_cfg, transforms=(train_tf, eval_tf))
    if cfg.num_classes is not None and cfg.num_classes != num_classes:
        raise TrainerError(f"num_classes: config says {cfg.num_classes} but dataset "
                           f"{cfg.dataset!r} has {num_classes}")
    plain_train, _, _ = data.build_datasets(data_cfg, transforms=(eval_tf, eval_tf))
    train_loader, val_loader = data.build_loaders(train_ds, val_ds, data_cfg, device=device,
                                                  seed=seed)
    return DataBundle(train_ds, val_ds, plain_train, num_classes, train_loader, val_loader,
                      data_cfg.resolved_eval_batch_size)


def create_criterion(cfg: TrainerConfig, num_classes: int) -> tuple[nn.Module, Any]:
    """``(criterion, mixup_fn)``: timm ``Mixup`` + ``SoftTargetCrossEntropy`` when mixing, else
    label-smoothing cross-entropy (plain cross-entropy without smoothing); ``mixup_fn`` is None
    without mixing."""
    from timm.data import Mixup
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if cfg.mixing:
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, prob=cfg.mixup_prob,
                      switch_prob=0.5, mode="batch", label_smoothing=cfg.smoothing,
                      num_classes=num_classes)
        return SoftTargetCrossEntropy(), mixup
    if cfg.smoothing > 0:
        return LabelSmoothingCrossEntropy(smoothing=cfg.smoothing), None
    return nn.CrossEntropyLoss(), None


def create_amp(cfg: TrainerConfig, device: torch.device, dtype: str | None = None
               ) -> tuple[torch.dtype | None, Any]:
    """``(autocast dtype, GradScaler)`` for ``amp``: bf16 where the device supports it (CPU,
    recent CUDA GPUs) without a scaler; fp16 with a ``GradScaler`` otherwise -- or when
    ``dtype="float16"`` asks for it (Quick-Tune's setting; on the CPU where torch allows it).
    ``(None, None)`` without AMP."""
    if not cfg.amp:
        return None, None
    fp16 = dtype == "float16" or (dtype is None and device.type == "cuda"
                                  and not torch.cuda.is_bf16_supported())
    if not fp16:
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler(device.type)


@dataclass
class Regularizers:
    """The regularisers built from the starting weights (None when off)."""

    l2sp: nn.Module | None = None
    delta: Any = None
    cotuning: nn.Module | None = None

    @property
    def need_features(self) -> bool:
        return self.delta is not None or self.cotuning is not None


def create_regularizers(cfg: TrainerConfig, model: nn.Module, frozen: set[str],
                        source_head: nn.Module | None, num_classes: int,
                        device: torch.device) -> Regularizers:
    """L2-SP over the backbone parameters trainable at the start (the whole head excluded),
    DELTA's frozen copy, and Co-Tuning around ``source_head`` (relationship still zero).

    Raises:
        TrainerError: ``cotuning-reg > 0`` without a source head.
    """
    from . import regularizers as regs
    from .freezing import head_parameter_names

    out = Regularizers()
    if cfg.sp_reg > 0:
        head = head_parameter_names(model)
        named = [(n, p) for n, p in model.named_parameters() if n not in head and n not in frozen]
        out.l2sp = regs.L2SP(model, named).to(device)
    if cfg.delta_reg > 0:
        out.delta = regs.DeltaRegularizer(model).to(device)
    if cfg.cotuning_reg > 0:
        if source_head is None:
            raise TrainerError(
                "cotuning-reg > 0 needs a source classifier head from a pretrained model: set "
                "'pretrained' to true (timm weights) or to a checkpoint path, or set "
                "cotuning-reg to 0")
        out.cotuning = regs.CoTuning(
            source_head.to(device),
            torch.zeros(num_classes, source_head.out_features, device=device))
    return out


def config_notes(cfg: TrainerConfig, model: nn.Module, max_epochs: int) -> dict[str, str]:
    """Settings that do less than they say for this model and run, as ``{flag: warning}``: each
    is logged once and reported as ``flag = 1`` in every epoch's metrics.

    - ``stoch_norm_noop``: ``stoch-norm`` on a model without BatchNorm (LayerNorm-only);
    - ``linear_probing_noop``: ``linear-probing`` with ``max_epochs`` 1 (no epoch to probe);
    - ``warmup_never_ends``: ``warmup_epochs >= max_epochs`` (the LR never reaches ``lr``).
    """
    notes = {}
    if cfg.stoch_norm and not any(isinstance(m, nn.modules.batchnorm._BatchNorm)
                                  for m in model.modules()):
        notes["stoch_norm_noop"] = (f"stoch-norm is on but {cfg.model} has no BatchNorm layer: "
                                    f"nothing to replace")
    if cfg.linear_probing and max_epochs // 2 < 1:
        notes["linear_probing_noop"] = (f"linear-probing is on but max_epochs is {max_epochs}: "
                                        f"half of it is no epoch, the head is never probed alone")
    if cfg.warmup_epochs >= max_epochs > 0:
        notes["warmup_never_ends"] = (f"warmup_epochs {cfg.warmup_epochs} >= max_epochs "
                                      f"{max_epochs}: the LR never reaches lr {cfg.lr}")
    return notes
