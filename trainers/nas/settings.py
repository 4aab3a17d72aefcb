"""Settings of the ``nas`` trainer: the run settings (:class:`NasTrainConfig`, keys, defaults and
checks) and :func:`split_config`, which divides a trial configuration into run settings,
architecture parameters and build settings (:mod:`trainers.nas.train` trains with them).

Invalid settings raise :class:`~spaces.errors.TrainerError` naming every problem (and, for an
unknown key, the closest valid keys) before anything is built or trained.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from trainers.errors import TrainerError

__all__ = ["NasTrainConfig", "TrackedConfig", "split_config", "TASKS", "DETECTION_DATASETS",
           "OPTIMIZERS"]

TASKS = ("classification", "detection")
DETECTION_DATASETS = ("synthetic-shapes", "synthetic", "coco")
OPTIMIZERS = ("sgd", "adamw")


class TrackedConfig(dict):
    """A plain ``dict`` that records which keys were read (``[]``, ``get``, ``pick``).

    Builders treat it as a mapping (``trainers.nas`` builders) or through the
    ``ArchConfig.pick`` protocol; ``used`` then holds the parameters that shaped the model.
    """

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self._used: set[str] = set()

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self._used.add(key)
        return value

    def get(self, key, default=None):
        return self[key] if key in self else default

    def pick(self, name: str) -> Any:
        return self[name]

    @property
    def used(self) -> set[str]:
        return set(self._used)


@dataclass(frozen=True)
class NasTrainConfig:
    """Run settings of the ``nas`` trainer (all optional).

    Args:
        arch: architecture space / builder name.
        task: ``"classification"`` or ``"detection"``.
        dataset: ``None`` means ``"digits"`` (classification) or ``"synthetic-shapes"``
            (detection).
        data_dir, download, val_fraction, num_workers: as in :class:`trainers.data.DataConfig`.
        data_fraction: fraction in (0, 1] of the training images (proxy tasks).
        image_size: input side in pixels (default 32 classification, 64 detection).
        num_classes: override the number of classes inferred from the data.
        num_train_images / num_val_images: size of the synthetic detection splits (before
            ``data_fraction``).
        batch_size: training batch size.
        optimizer: ``"sgd"`` (momentum, nesterov) or ``"adamw"``.
        lr, momentum, weight_decay, label_smoothing: optimisation; ``lr`` is the peak of a
            cosine schedule over ``ctx.max_epochs`` epochs (after ``warmup_epochs`` linear warm-up).
        grad_clip: clip the gradient norm to this value (``None``: no clipping).
        latency_target: latency target in ms; when set, ``reward`` is reported.
        reward: ``"soft"`` (``metric * (target / latency) ** reward_weight``) or ``"hard"``
            (``metric * min(target / latency, 1)``).
        latency_device: ``"cpu"`` (default, comparable across machines of one cluster),
            ``"auto"`` (the training device) or ``"cuda"``.
        latency_warmup / latency_repeats: timed runs at batch 1 (median reported).
        augment: ``"randaugment"``, ``"autoaugment"``, ``"none"`` or ``None`` (inferred from the
            augmentation parameters present).
        device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda[:i]"``.
        deterministic: ``torch.use_deterministic_algorithms(True, warn_only=True)``.
        checkpoint_every: checkpoint every N epochs (0: never; the last epoch is always saved
            when N > 0).
    """

    arch: str = "mnasnet"
    task: str = "classification"
    dataset: str | None = None
    data_dir: str | None = None
    download: bool = False
    data_fraction: float = 1.0
    val_fraction: float = 0.2
    image_size: int | None = None
    num_classes: int | None = None
    num_train_images: int = 256
    num_val_images: int = 64
    num_workers: int = 0
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.0
    warmup_epochs: int = 0
    grad_clip: float | None = None
    latency_target: float | None = None
    reward: str = "soft"
    reward_weight: float = 0.07
    latency_device: str = "cpu"
    latency_warmup: int = 3
    latency_repeats: int = 10
    augment: str | None = None
    device: str = "auto"
    deterministic: bool = False
    checkpoint_every: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.task not in TASKS:
            problems.append(f"task must be one of {TASKS}, got {self.task!r}")
        if self.optimizer.lower() not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.reward not in ("soft", "hard"):
            problems.append(f"reward must be 'soft' or 'hard', got {self.reward!r}")
        if not 0 < float(self.data_fraction) <= 1:
            problems.append(f"data_fraction must be in (0, 1], got {self.data_fraction!r}")
        if not float(self.lr) > 0:
            problems.append(f"lr must be > 0, got {self.lr!r}")
        for name, low in (("batch_size", 1), ("num_train_images", 1), ("num_val_images", 1),
                          ("latency_repeats", 1), ("latency_warmup", 0), ("warmup_epochs", 0),
                          ("checkpoint_every", 0), ("num_workers", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                problems.append(f"{name} must be an integer >= {low}, got {v!r}")
        if self.image_size is not None and int(self.image_size) < 8:
            problems.append(f"image_size must be >= 8, got {self.image_size!r}")
        if self.latency_target is not None and not float(self.latency_target) > 0:
            problems.append(f"latency_target must be > 0 ms, got {self.latency_target!r}")
        if self.latency_device not in ("cpu", "auto", "cuda") and not str(self.latency_device).startswith("cuda:"):
            problems.append(f"latency_device must be 'cpu', 'auto' or 'cuda[:i]', got {self.latency_device!r}")
        if self.task == "detection" and self.dataset is not None and self.dataset not in DETECTION_DATASETS:
            problems.append(f"detection dataset must be one of {DETECTION_DATASETS}, got {self.dataset!r}")
        if problems:
            raise TrainerError("invalid nas trainer settings: " + "; ".join(problems))

    @property
    def resolved_dataset(self) -> str:
        if self.dataset is not None:
            return self.dataset
        return "digits" if self.task == "classification" else "synthetic-shapes"

    @property
    def resolved_image_size(self) -> int:
        if self.image_size is not None:
            return int(self.image_size)
        return 32 if self.task == "classification" else 64

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}


def _build_setting_names() -> set[str]:
    from trainers.nas import BUILD_SETTINGS
    from trainers.nas.mobile import MOBILE_SETTINGS

    return set(BUILD_SETTINGS) | set(MOBILE_SETTINGS)


def _augment_names() -> set[str]:
    from spaces.library import get_space

    return set(get_space("randaugment").params) | set(get_space("autoaugment").params)


def split_config(config: Mapping[str, Any]):
    """``(run settings, architecture space, complete TrackedConfig for the builder)``.

    Raises ``TrainerError`` for keys that are neither run/build settings nor parameters of the
    architecture or augmentation spaces, naming the closest valid keys.
    """
    from spaces.library import get_space

    arch = str(config.get("arch", NasTrainConfig.arch)).lower()
    try:
        space = get_space(arch)
    except Exception as e:  # SpaceError: unknown space
        raise TrainerError(f"arch: {e}") from None
    run_fields = NasTrainConfig.field_names()
    build_fields = _build_setting_names()
    known = run_fields | build_fields | set(space.params) | _augment_names()
    unknown = sorted(k for k in config if k not in known)
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, sorted(known), n=3, cutoff=0.6)
            hints.append(f"{k!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
        raise TrainerError(
            f"unknown nas trainer config keys for arch {arch!r}: {', '.join(hints)}; valid run settings: "
            f"{sorted(run_fields)}; build settings: {sorted(build_fields)}; plus the parameters of "
            f"space {arch!r} and of the randaugment/autoaugment spaces"
        )
    run = {k: v for k, v in config.items() if k in run_fields}
    run["arch"] = arch
    if "image_size" in space.params and "image_size" not in run:  # e.g. spinenet_scaling
        run["image_size"] = space.default().get("image_size")
    try:
        settings = NasTrainConfig(**run)
    except TypeError as e:
        raise TrainerError(f"invalid nas trainer settings: {e}") from None
    arch_values = dict(space.default())
    arch_values.update({k: v for k, v in config.items() if k in space.params})
    # drop parameters made inactive by the given values; keep the rest for validation
    arch_values = {k: v for k, v in arch_values.items() if space.is_active(k, arch_values)}
    try:
        space.validate(arch_values)
    except Exception as e:
        raise TrainerError(f"invalid architecture for space {arch!r}: {e}") from None
    builder_cfg = TrackedConfig(arch_values)
    builder_cfg.update({k: v for k, v in config.items() if k in build_fields})
    if "image_size" in build_fields:
        dict.__setitem__(builder_cfg, "image_size", settings.resolved_image_size)
    return settings, space, builder_cfg
