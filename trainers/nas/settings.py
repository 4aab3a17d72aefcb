"""Settings of the ``nas`` trainer: the run settings (:class:`NasTrainConfig`, keys, defaults and
checks) and :func:`split_config`, which divides a trial configuration into run settings,
architecture parameters and build settings (:mod:`trainers.nas.train` trains with them).

Invalid settings raise :class:`~trainers.errors.TrainerError` naming every problem (and, for an
unknown key, the closest valid keys) before anything is built or trained.
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from spaces.errors import ArchtuneError
from trainers.errors import TrainerError
from trainers.knobs import NAS_KNOBS, NAS_OPTIMIZERS, TASKS, knob_dataclass

__all__ = ["NasTrainConfig", "TrackedConfig", "split_config", "TASKS", "DETECTION_DATASETS",
           "SEGMENTATION_DATASETS", "OPTIMIZERS"]

DETECTION_DATASETS = ("synthetic-shapes", "synthetic", "coco")
SEGMENTATION_DATASETS = ("synthetic-shapes", "synthetic", "voc", "coco")
_TASK_DATASETS = {"detection": DETECTION_DATASETS, "segmentation": SEGMENTATION_DATASETS}
OPTIMIZERS = NAS_OPTIMIZERS


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


@knob_dataclass(NAS_KNOBS)
class NasTrainConfig:
    """Run settings of the ``nas`` trainer (all optional).

    One field per knob of :data:`trainers.knobs.NAS_KNOBS` (kind, domain, default and doc are
    declared there; ``docs/trainer-knobs.md`` lists them). The Quick-Tune spellings ``opt``,
    ``batch-size``, ``weight-decay`` and ``smoothing`` are the knobs' names; ``optimizer``,
    ``batch_size``, ``weight_decay`` and ``label_smoothing`` (the field names) are accepted too,
    but not both spellings of one knob. ``lr`` is the peak of a cosine schedule over
    ``ctx.max_epochs`` epochs (after ``warmup_epochs`` of linear warm-up).

    Raises:
        TrainerError: one error naming every invalid value, a detection or segmentation task
            with a dataset it cannot read, or a task the ``arch`` builder does not build.
    """

    def _check_fields(self) -> None:
        from trainers.nas import check_task, is_builder

        valid = _TASK_DATASETS.get(self.task)
        if valid is not None and self.dataset is not None and self.dataset not in valid:
            raise TrainerError(f"invalid nas trainer settings: dataset: a {self.task} task needs "
                               f"one of {', '.join(valid)}, got {self.dataset!r}")
        if is_builder(self.arch):
            try:
                check_task(self.arch, self.task)
            except TrainerError as e:
                raise TrainerError(f"invalid nas trainer settings: {e}") from None

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], *, strict: bool = True) -> "NasTrainConfig":
        """Build from run-setting keys (any spelling); ``strict=False`` ignores other keys.

        Raises:
            TrainerError: unknown keys (``strict``), one knob under two spellings, or invalid
                values, all in one error.
        """
        return cls(**NAS_KNOBS.parse(config, strict=strict))

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
        """Every config key that is a run setting: the knobs' names and aliases (the dataclass
        field names among them)."""
        return set(NAS_KNOBS.spellings())


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
    except ArchtuneError as e:
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
    run = NAS_KNOBS.to_fields({k: v for k, v in config.items() if k in run_fields})
    run["arch"] = arch
    if "image_size" in space.params and "image_size" not in run:  # e.g. spinenet_scaling
        run["image_size"] = space.default().get("image_size")
    settings = NasTrainConfig(**run)
    arch_values = dict(space.default())
    arch_values.update({k: v for k, v in config.items() if k in space.params})
    # drop parameters made inactive by the given values; keep the rest for validation
    arch_values = {k: v for k, v in arch_values.items() if space.is_active(k, arch_values)}
    try:
        space.validate(arch_values)
    except (ArchtuneError, ValueError) as e:
        raise TrainerError(f"invalid architecture for space {arch!r}: {e}") from None
    builder_cfg = TrackedConfig(arch_values)
    builder_cfg.update({k: v for k, v in config.items() if k in build_fields})
    if "image_size" in build_fields:
        dict.__setitem__(builder_cfg, "image_size", settings.resolved_image_size)
    return settings, space, builder_cfg
