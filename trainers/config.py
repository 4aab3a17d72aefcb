"""Typed configuration of the fine-tuning trainer.

The flat config dict uses the Quick-Tune parameter names exactly (``pct-to-freeze``,
``warmup_epochs``, ``opt-betas`` = ``"0.9 0.999"`` ...) next to the run-setting keys of the
trial contract (``dataset``, ``image_size``, ``pretrained`` ...). :meth:`TrainerConfig.from_dict`
maps them onto a frozen dataclass, validates every value and rejects unknown keys.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from trainers.errors import TrainerError

__all__ = ["TrainerConfig", "OPTIMIZERS", "SCHEDULERS", "AUGMENTATIONS"]

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "adamp")
SCHEDULERS = ("cosine", "step", "multistep", "plateau")
AUGMENTATIONS = ("auto-augment", "random-augment", "trivial-augment", "none")


def _key(name: str) -> dict:
    return {"key": name}


@dataclass(frozen=True)
class TrainerConfig:
    """Every knob of the fine-tuning trainer (Quick-Tune space + run settings).

    Field ``x_y`` is read from config key ``x-y`` (Quick-Tune name) unless its metadata names
    another key (``warmup_epochs`` and the run settings keep their underscores). A value of 0
    turns a regulariser / augmentation off. See REFERENCE.md §1 for the meaning of each knob.
    """

    # model & freezing
    model: str = field(default="resnet10t", metadata=_key("model"))
    pretrained: bool | str = field(default=False, metadata=_key("pretrained"))
    pct_to_freeze: float = field(default=0.0, metadata=_key("pct-to-freeze"))
    linear_probing: bool = field(default=False, metadata=_key("linear-probing"))
    layer_decay: float = field(default=0.0, metadata=_key("layer-decay"))
    stoch_norm: bool = field(default=False, metadata=_key("stoch-norm"))
    drop: float = field(default=0.0, metadata=_key("drop"))
    # regularisers
    sp_reg: float = field(default=0.0, metadata=_key("sp-reg"))
    delta_reg: float = field(default=0.0, metadata=_key("delta-reg"))
    bss_reg: float = field(default=0.0, metadata=_key("bss-reg"))
    cotuning_reg: float = field(default=0.0, metadata=_key("cotuning-reg"))
    # mixing / loss
    mixup: float = field(default=0.0, metadata=_key("mixup"))
    mixup_prob: float = field(default=1.0, metadata=_key("mixup-prob"))
    cutmix: float = field(default=0.0, metadata=_key("cutmix"))
    smoothing: float = field(default=0.0, metadata=_key("smoothing"))
    # optimisation
    clip_grad: float = field(default=0.0, metadata=_key("clip-grad"))
    amp: bool = field(default=False, metadata=_key("amp"))
    opt: str = field(default="adamw", metadata=_key("opt"))
    opt_betas: str = field(default="0.9 0.999", metadata=_key("opt-betas"))
    lr: float = field(default=1e-3, metadata=_key("lr"))
    momentum: float = field(default=0.9, metadata=_key("momentum"))
    weight_decay: float = field(default=0.0, metadata=_key("weight-decay"))
    batch_size: int = field(default=64, metadata=_key("batch-size"))
    sched: str = field(default="cosine", metadata=_key("sched"))
    warmup_epochs: int = field(default=0, metadata=_key("warmup_epochs"))
    warmup_lr: float = field(default=0.0, metadata=_key("warmup-lr"))
    patience_epochs: int = field(default=10, metadata=_key("patience-epochs"))
    decay_rate: float = field(default=0.1, metadata=_key("decay-rate"))
    decay_epochs: int = field(default=10, metadata=_key("decay-epochs"))
    # data augmentation
    data_augmentation: str = field(default="none", metadata=_key("data-augmentation"))
    auto_augment: str = field(default="v0", metadata=_key("auto-augment"))
    ra_num_ops: int = field(default=2, metadata=_key("ra-num-ops"))
    ra_magnitude: int = field(default=9, metadata=_key("ra-magnitude"))
    # run settings (trial contract)
    dataset: str = field(default="digits", metadata=_key("dataset"))
    data_dir: str | None = field(default=None, metadata=_key("data_dir"))
    download: bool = field(default=False, metadata=_key("download"))
    data_fraction: float = field(default=1.0, metadata=_key("data_fraction"))
    image_size: int | None = field(default=None, metadata=_key("image_size"))
    val_fraction: float = field(default=0.2, metadata=_key("val_fraction"))
    num_workers: int = field(default=0, metadata=_key("num_workers"))
    num_classes: int | None = field(default=None, metadata=_key("num_classes"))
    device: str = field(default="auto", metadata=_key("device"))
    deterministic: bool = field(default=False, metadata=_key("deterministic"))
    checkpoint_every: int = field(default=1, metadata=_key("checkpoint_every"))
    eval_batch_size: int | None = field(default=None, metadata=_key("eval_batch_size"))

    # ------------------------------------------------------------------------------------------
    @classmethod
    def keys(cls) -> dict[str, str]:
        """Config key -> field name."""
        return {f.metadata["key"]: f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> "TrainerConfig":
        """Build and validate from a flat config dict.

        Raises:
            TrainerError: an unknown key (with the closest valid names) or an invalid value.
        """
        if not isinstance(config, dict):
            raise TrainerError(f"trainer config must be a dict, got {type(config).__name__}")
        keys = cls.keys()
        unknown = [k for k in config if k not in keys]
        if unknown:
            lines = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), list(keys), n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
                lines.append(f"unknown config key {k!r}{hint}")
            raise TrainerError(
                "; ".join(lines) + f". Valid keys: {', '.join(sorted(keys))}"
            )
        kwargs = {keys[k]: v for k, v in config.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The flat config dict (config keys, every field)."""
        return {f.metadata["key"]: getattr(self, f.name) for f in dataclasses.fields(self)}

    def __post_init__(self) -> None:
        errors: list[str] = []
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        key = {f.name: f.metadata["key"] for f in dataclasses.fields(self)}

        def number(name: str, kind=float, low=None, high=None, low_open=False) -> None:
            value = getattr(self, name)
            if value is None:
                errors.append(f"{key[name]}: must be a number, got None")
                return
            try:
                if kind is int:
                    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                        raise ValueError
                    value = int(value)
                else:
                    value = float(value)
            except (TypeError, ValueError):
                errors.append(f"{key[name]}: must be {'an integer' if kind is int else 'a number'}, got {value!r}")
                return
            if kind is float and not math.isfinite(value):
                errors.append(f"{key[name]}: must be finite, got {value!r}")
                return
            if low is not None and (value <= low if low_open else value < low):
                errors.append(f"{key[name]}: must be {'>' if low_open else '>='} {low}, got {value!r}")
                return
            if high is not None and value > high:
                errors.append(f"{key[name]}: must be <= {high}, got {value!r}")
                return
            set_(name, value)

        def flag(name: str) -> None:
            value = getattr(self, name)
            if isinstance(value, str) and value.lower() in ("true", "false"):
                value = value.lower() == "true"
            if hasattr(value, "item"):
                value = value.item()
            if not isinstance(value, (bool, int)) or value not in (0, 1):
                errors.append(f"{key[name]}: must be true or false, got {value!r}")
                return
            set_(name, bool(value))

        def choice(name: str, choices: tuple) -> None:
            value = getattr(self, name)
            if not isinstance(value, str) or value.lower() not in choices:
                errors.append(f"{key[name]}: must be one of {', '.join(choices)}, got {value!r}")
                return
            set_(name, value.lower())

        for name in ("pct_to_freeze", "mixup_prob", "drop", "smoothing"):
            number(name, float, 0.0, 1.0)
        number("layer_decay", float, 0.0, 1.0)
        for name in ("sp_reg", "delta_reg", "bss_reg", "cotuning_reg", "mixup", "cutmix",
                     "clip_grad", "weight_decay", "warmup_lr"):
            number(name, float, 0.0)
        number("lr", float, 0.0, low_open=True)
        number("momentum", float, 0.0, 1.0)
        number("decay_rate", float, 0.0, 1.0, low_open=True)
        number("batch_size", int, 1)
        number("warmup_epochs", int, 0)
        number("patience_epochs", int, 0)
        number("decay_epochs", int, 1)
        number("ra_num_ops", int, 0)
        number("ra_magnitude", int, 0, 30)
        number("data_fraction", float, 0.0, 1.0, low_open=True)
        number("val_fraction", float, 0.0, 0.999, low_open=True)
        number("num_workers", int, 0)
        number("checkpoint_every", int, 0)
        if self.image_size is not None:
            number("image_size", int, 1)
        if self.num_classes is not None:
            number("num_classes", int, 1)
        if self.eval_batch_size is not None:
            number("eval_batch_size", int, 1)
        for name in ("linear_probing", "stoch_norm", "amp", "download", "deterministic"):
            flag(name)
        choice("opt", OPTIMIZERS)
        choice("sched", SCHEDULERS)
        choice("data_augmentation", AUGMENTATIONS)
        choice("auto_augment", ("v0", "original"))
        if not isinstance(self.model, str) or not self.model:
            errors.append(f"model: must be a timm model name, got {self.model!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            errors.append(f"dataset: must be a dataset name, got {self.dataset!r}")
        if not isinstance(self.device, str):
            errors.append(f"device: must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")
        if isinstance(self.pretrained, str) and self.pretrained.lower() in ("true", "false"):
            set_("pretrained", self.pretrained.lower() == "true")
        elif not isinstance(self.pretrained, (bool, str)):
            if hasattr(self.pretrained, "__fspath__"):
                set_("pretrained", str(self.pretrained))
            else:
                errors.append(f"pretrained: must be true/false or a checkpoint path, got {self.pretrained!r}")
        try:
            self.betas
        except TrainerError as exc:
            errors.append(str(exc))
        if errors:
            raise TrainerError("invalid trainer config: " + "; ".join(errors))

    # ------------------------------------------------------------------------------------------
    @property
    def betas(self) -> tuple[float, float]:
        """``opt-betas`` parsed: ``"0.9 0.999"`` -> ``(0.9, 0.999)``."""
        value = self.opt_betas
        parts = value.split() if isinstance(value, str) else list(value)
        try:
            b1, b2 = (float(p) for p in parts)
        except (TypeError, ValueError):
            raise TrainerError(
                f"opt-betas: must be two numbers like '0.9 0.999', got {value!r}"
            ) from None
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise TrainerError(f"opt-betas: both betas must be in [0, 1), got {value!r}")
        return b1, b2

    @property
    def mixing(self) -> bool:
        """Whether Mixup/CutMix can ever fire."""
        return (self.mixup > 0 or self.cutmix > 0) and self.mixup_prob > 0
