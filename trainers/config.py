"""Typed configuration of the fine-tuning trainer.

The flat config dict uses the Quick-Tune parameter names exactly (``pct-to-freeze``,
``warmup_epochs``, ``opt-betas`` = ``"0.9 0.999"`` ...) next to the run-setting keys of the
trial contract (``dataset``, ``image_size``, ``pretrained`` ...). Each key is a knob declared in
:mod:`trainers.knobs`. :meth:`TrainerConfig.from_dict` maps them onto a frozen dataclass,
validates every value and rejects unknown keys; :func:`validate_data` checks an experiment's
``data:`` mapping for any trainer before a trial starts.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

from trainers.errors import TrainerError
from trainers.knobs import (
    AUGMENTATIONS,
    FINETUNE_KNOBS,
    NAS_KNOBS,
    OPTIMIZERS,
    SCHEDULERS,
    KnobTable,
    knob_dataclass,
)

__all__ = ["TrainerConfig", "validate_data", "OPTIMIZERS", "SCHEDULERS", "AUGMENTATIONS"]


@knob_dataclass(FINETUNE_KNOBS)
class TrainerConfig:
    """Every knob of the fine-tuning trainer (Quick-Tune space + run settings).

    One field per knob of :data:`trainers.knobs.FINETUNE_KNOBS` (type, domain, default and doc
    are declared there; ``docs/trainer-knobs.md`` lists them). Field ``x_y`` is read from config
    key ``x-y`` (the Quick-Tune name) unless the knob is spelt with underscores
    (``warmup_epochs`` and the run settings). A value of 0 turns a regulariser / augmentation
    off. See REFERENCE.md section 1 for the meaning of each knob.

    Raises:
        TrainerError: one error naming every invalid value, its key and the key's rule.
    """

    # ------------------------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> dict[str, str]:
        """Config key -> field name (the knobs' names; aliases are accepted by :meth:`from_dict`)."""
        return {f.metadata["key"]: f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, config: Mapping[str, Any]) -> "TrainerConfig":
        """Build and validate from a flat config dict (any spelling of each key).

        Raises:
            TrainerError: unknown keys (with the closest valid names), a knob given under two
                spellings, or invalid values -- all problems in one error.
        """
        return cls(**FINETUNE_KNOBS.parse(config))

    def to_dict(self) -> dict[str, Any]:
        """The flat config dict (config keys, every field)."""
        return {f.metadata["key"]: getattr(self, f.name) for f in dataclasses.fields(self)}

    # ------------------------------------------------------------------------------------------
    @property
    def betas(self) -> tuple[float, float]:
        """``opt-betas`` parsed: ``"0.9 0.999"`` -> ``(0.9, 0.999)`` (checked by its knob)."""
        b1, b2 = (float(p) for p in self.opt_betas.split())
        return b1, b2

    @property
    def mixing(self) -> bool:
        """Whether Mixup/CutMix can ever fire."""
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0


# ----------------------------------------------------------------------------------------------
# up-front validation of an experiment's data: mapping

_SHARED_DATA_KNOBS = KnobTable("data", [FINETUNE_KNOBS[k] for k in (
    "dataset", "data_dir", "download", "data_fraction", "image_size", "val_fraction",
    "num_workers")])
# built-in trainers whose classification data comes from trainers.data.build_datasets
_DATASET_TRAINERS = ("finetune", "nas", "compose", "supernet")


def validate_data(data: Mapping[str, Any], trainer: Any = "finetune", *,
                  root: str | Path | None = None) -> None:
    """Check an experiment's ``data:`` mapping before any trial starts.

    - ``trainer="finetune"``: every key must be a knob of the finetune trainer (any spelling,
      :data:`trainers.knobs.FINETUNE_KNOBS`) with a valid value.
    - ``"nas"`` / ``"compose"``: the keys that are nas run settings are checked
      (:data:`trainers.knobs.NAS_KNOBS`, plus the detection/segmentation dataset rules and the
      tasks the ``arch`` builder declares); the other keys are
      architecture parameters or build settings, which the trainer checks against its space.
    - any other trainer (a name, ``"module:function"`` or a callable): the shared data keys
      present (``dataset``, ``data_dir``, ``download``, ``data_fraction``, ``image_size``,
      ``val_fraction``, ``num_workers``) are checked; the rest belongs to the trainer.

    Then, for the built-in trainers: ``dataset`` is one of
    :func:`trainers.data.list_datasets` (case-insensitive, aliases allowed; a nas detection or
    segmentation dataset is checked by the rule above) and ``imagefolder`` has a ``data_dir``.
    For every trainer: ``data_dir`` exists unless ``download`` is true, and for ``finetune`` a
    ``pretrained`` checkpoint path exists. A relative path is looked up under ``root`` (e.g. the
    experiment file's folder) when given, then under the working directory.

    Raises:
        TrainerError: naming the key, its rule and (for unknown keys or names) the closest valid
            ones.

    Example:
        >>> validate_data({"dataset": "digits", "image_size": 32, "batch-size": 16})
    """
    name = trainer if isinstance(trainer, str) else None
    name = "nas" if name == "compose" else name
    if name == "finetune":
        fields = FINETUNE_KNOBS.parse(data)
    elif name == "nas":
        from trainers.nas.settings import NasTrainConfig

        fields = NAS_KNOBS.parse(data, strict=False)
        NasTrainConfig(**fields)
    else:
        fields = _SHARED_DATA_KNOBS.parse(data, strict=False)
    own_datasets = fields.get("task") in ("detection", "segmentation")
    if name in _DATASET_TRAINERS and not own_datasets and fields.get("dataset") is not None:
        from trainers.data import DataConfig

        DataConfig(dataset=fields["dataset"], data_dir=fields.get("data_dir"))
    if fields.get("data_dir") is not None and not fields.get("download"):
        _check_exists("data_dir", fields["data_dir"], root)
    if name == "finetune" and isinstance(fields.get("pretrained"), str):
        _check_exists("pretrained", fields["pretrained"], root)


def _check_exists(key: str, value: str, root: str | Path | None) -> None:
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() else \
        [*([Path(root) / path] if root is not None else []), Path.cwd() / path]
    if not any(c.exists() for c in candidates):
        where = " or ".join(str(c) for c in candidates)
        raise TrainerError(f"{key}: path {value!r} does not exist (looked for {where})")
