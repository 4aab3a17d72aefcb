"""Every trainer knob, declared once.

A :class:`Knob` is one config key as the user writes it: its kind (type), its domain, its
default, a one-line doc and the other spellings accepted for it. A :class:`KnobTable` is the set
of knobs one consumer reads (:data:`FINETUNE_KNOBS` for the ``finetune`` trainer,
:data:`NAS_KNOBS` for the ``nas`` trainer, :data:`DATA_KNOBS` for
:class:`trainers.data.DataConfig`). Everything else derives from these declarations:

- the config dataclasses (:func:`knob_dataclass` adds one field per knob and validates in
  ``__post_init__``);
- validation: unknown keys, wrong types and out-of-domain values raise one
  :class:`~trainers.errors.TrainerError` naming each key, its rule and the closest valid names;
- the choice tuples (:data:`OPTIMIZERS`, :data:`SCHEDULERS`, :data:`AUGMENTATIONS` ...);
- ``archtune train --help`` (:func:`help_text`) and ``docs/trainer-knobs.md``
  (:func:`render_markdown`; regenerate with ``python -m trainers.knobs > docs/trainer-knobs.md``).

A knob shared by several trainers is declared once here and refined per trainer with
:meth:`Knob.replace` (another default, a narrower domain, another dataclass field name).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from trainers.errors import TrainerError

__all__ = [
    "AUGMENTATIONS",
    "AUTO_AUGMENT_POLICIES",
    "DATA_KNOBS",
    "FINETUNE_KNOBS",
    "NAS_KNOBS",
    "NAS_OPTIMIZERS",
    "OPTIMIZERS",
    "REWARDS",
    "SCHEDULERS",
    "TABLES",
    "TASKS",
    "Knob",
    "KnobTable",
    "help_text",
    "knob_dataclass",
    "render_markdown",
]

KINDS = ("float", "int", "bool", "choice", "name", "path", "pretrained", "betas", "device")
_PY_TYPES = {"float": "float", "int": "int", "bool": "bool", "choice": "str", "name": "str",
             "path": "str", "pretrained": "bool | str", "betas": "str", "device": "str"}
_PLAIN_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


# ----------------------------------------------------------------------------------------------
# value parsers: value -> normalised value, or raise _Invalid


class _Invalid(Exception):
    """A value outside a knob's rule (turned into a TrainerError naming the knob)."""


def _number(value: Any, integer: bool) -> float | int:
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        raise _Invalid
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _Invalid from None
    if not isinstance(value, numbers.Real):
        raise _Invalid
    value = float(value)
    if not math.isfinite(value):
        raise _Invalid
    if integer:
        if not value.is_integer():
            raise _Invalid
        return int(value)
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, (bool, int)) and value in (0, 1):
        return bool(value)
    raise _Invalid


def _path(value: Any) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise _Invalid
    return value


def _pretrained(value: Any) -> bool | str:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    return _path(value)


def _betas(value: Any) -> str:
    parts = value.split() if isinstance(value, str) else value
    try:
        b1, b2 = (_number(p, integer=False) for p in parts)
    except (TypeError, ValueError, _Invalid):
        raise _Invalid from None
    if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
        raise _Invalid
    return value if isinstance(value, str) else f"{b1} {b2}"


def _device(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid
    name = value.strip().lower()
    if _PLAIN_DEVICE.fullmatch(name):
        return name
    import torch

    try:
        torch.device(name)
    except (RuntimeError, ValueError):
        raise _Invalid from None
    return name


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "bool": _flag, "path": _path, "pretrained": _pretrained, "betas": _betas, "device": _device}


# ----------------------------------------------------------------------------------------------
# Knob


@dataclass(frozen=True)
class Knob:
    """One config key of a trainer.

    Args:
        name: the key as the user writes it (Quick-Tune spelling where Quick-Tune has the knob).
        kind: ``float``, ``int`` (integral floats and numeric strings accepted), ``bool``
            (``true``/``false``, 0/1), ``choice`` (one of ``choices``, case-insensitive, stored
            lower-case), ``name`` (a non-empty string), ``path``, ``pretrained`` (true, false or
            a checkpoint path), ``betas`` (two numbers in [0, 1), ``"0.9 0.999"``) or
            ``device`` (``auto`` or a torch device string).
        default: the value when the key is absent (must satisfy the rule).
        doc: one line: what the knob does.
        low, high: inclusive bounds of a number (``low_open`` / ``high_open`` make them
            exclusive); ``None``: unbounded.
        choices: the values of a ``choice`` knob (lower-case).
        optional: ``None`` is a valid value too (its meaning is in ``doc``).
        aliases: other accepted spellings of the key.
        field: the attribute name on the config dataclass (default: ``name`` with ``-`` -> ``_``).

    Raises:
        TrainerError: an inconsistent declaration (unknown kind, default outside the rule).
    """

    name: str
    kind: str
    default: Any
    doc: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    aliases: tuple[str, ...] = ()
    field: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TrainerError(f"knob {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise TrainerError(f"knob {self.name!r}: choices go with kind 'choice' only")
        if not self.field:
            object.__setattr__(self, "field", self.name.replace("-", "_"))
        object.__setattr__(self, "choices", tuple(c.lower() for c in self.choices))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        if not (self.default is None and self.optional):
            try:
                self.parse(self.default)
            except TrainerError as exc:
                raise TrainerError(f"knob {self.name!r}: default {exc}") from None

    @property
    def spellings(self) -> tuple[str, ...]:
        """The name and its aliases."""
        return (self.name, *self.aliases)

    @property
    def annotation(self) -> str:
        """The Python type of the dataclass field, as a string."""
        base = _PY_TYPES[self.kind]
        return f"{base} | None" if self.optional else base

    @property
    def rule(self) -> str:
        """What a valid value is, in words (``"a number in (0, 1]"``)."""
        words = {
            "bool": "true or false",
            "choice": "one of " + ", ".join(self.choices),
            "name": "a non-empty name",
            "path": "a path",
            "pretrained": "true, false or a checkpoint path",
            "betas": "two numbers in [0, 1) like '0.9 0.999'",
            "device": "'auto', 'cpu', 'cuda' or 'cuda:N'",
        }
        if self.kind in words:
            text = words[self.kind]
        else:
            text = ("an integer" if self.kind == "int" else "a number") + self._range()
        return text + (" or null" if self.optional else "")

    def _range(self) -> str:
        lo, hi = self.low, self.high
        if lo is not None and hi is not None:
            return f" in {'(' if self.low_open else '['}{lo:g}, {hi:g}{')' if self.high_open else ']'}"
        if lo is not None:
            return f" {'>' if self.low_open else '>='} {lo:g}"
        if hi is not None:
            return f" {'<' if self.high_open else '<='} {hi:g}"
        return ""

    def parse(self, value: Any) -> Any:
        """``value`` checked against the rule and normalised (``"true"`` -> ``True``,
        ``3.0`` -> ``3`` for an integer, choices lower-cased).

        Raises:
            TrainerError: ``"<name>: must be <rule>, got <value>"`` (with close choices).
        """
        if value is None and self.optional:
            return None
        try:
            return self._parse(value)
        except _Invalid:
            raise TrainerError(self._complaint(value)) from None

    def _parse(self, value: Any) -> Any:
        if self.kind in ("float", "int"):
            number = _number(value, integer=self.kind == "int")
            self._check_bounds(number)
            return number
        if self.kind == "choice":
            if not isinstance(value, str) or value.strip().lower() not in self.choices:
                raise _Invalid
            return value.strip().lower()
        if self.kind == "name":
            if not isinstance(value, str) or not value.strip():
                raise _Invalid
            return value
        return _PARSERS[self.kind](value)

    def _check_bounds(self, number: float) -> None:
        lo, hi = self.low, self.high
        if lo is not None and (number <= lo if self.low_open else number < lo):
            raise _Invalid
        if hi is not None and (number >= hi if self.high_open else number > hi):
            raise _Invalid

    def _complaint(self, value: Any) -> str:
        text = f"{self.name}: must be {self.rule}, got {value!r}"
        if self.kind == "choice" and isinstance(value, str):
            close = difflib.get_close_matches(value.lower(), self.choices, n=3, cutoff=0.5)
            if close:
                text += f" (did you mean {', '.join(repr(c) for c in close)}?)"
        return text

    def replace(self, **changes: Any) -> Knob:
        """This knob with some attributes changed (another default, domain or field name; a
        new ``name`` without a ``field`` derives the field from the new name)."""
        if "name" in changes and "field" not in changes:
            changes["field"] = ""
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------
# KnobTable


class KnobTable(Mapping[str, Knob]):
    """The knobs of one trainer, in declaration order, looked up by any spelling.

    Args:
        owner: what the knobs configure (``"finetune trainer"``), used in error messages.
        knobs: the knobs; names, aliases and field names must be unique.
    """

    def __init__(self, owner: str, knobs: Iterable[Knob]):
        self.owner = owner
        self._knobs: dict[str, Knob] = {}
        self._spelling: dict[str, Knob] = {}
        self._field: dict[str, Knob] = {}
        for knob in knobs:
            taken = [s for s in knob.spellings if s in self._spelling]
            if taken or knob.field in self._field:
                raise TrainerError(f"{owner}: knob {knob.name!r} reuses {taken or knob.field!r}")
            self._knobs[knob.name] = knob
            self._field[knob.field] = knob
            self._spelling.update({s: knob for s in knob.spellings})

    def __getitem__(self, key: str) -> Knob:
        return self._spelling[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._knobs)

    def __len__(self) -> int:
        return len(self._knobs)

    def __contains__(self, key: object) -> bool:
        return key in self._spelling

    def spellings(self) -> list[str]:
        """Every accepted key (names and aliases), sorted."""
        return sorted(self._spelling)

    def by_field(self, field: str) -> Knob:
        """The knob stored in dataclass field ``field``."""
        return self._field[field]

    def fields(self) -> list[str]:
        """The dataclass field names, in declaration order."""
        return [k.field for k in self._knobs.values()]

    def defaults(self) -> dict[str, Any]:
        """Knob name -> default."""
        return {k.name: k.default for k in self._knobs.values()}

    def close_matches(self, key: str, n: int = 3) -> list[str]:
        """Up to ``n`` accepted keys closest to ``key``."""
        return difflib.get_close_matches(str(key), self.spellings(), n=n, cutoff=0.5)

    def unknown_key(self, key: Any) -> str:
        """The complaint for an unknown key: the key and the closest accepted keys."""
        close = self.close_matches(str(key))
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return f"unknown config key {key!r}{hint}"

    def to_fields(self, config: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """``config`` (any spelling of each key) keyed by dataclass field, values unchecked.

        Raises:
            TrainerError: one error listing every unknown key (``strict``; otherwise unknown
                keys are left out) and every knob given under two spellings.
        """
        out, problems, unknown = self._split(config, strict)
        self._raise(problems, unknown)
        return out

    def check(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (keyed by dataclass field) parsed by their knobs.

        Raises:
            TrainerError: one error naming every bad value, its knob and the knob's rule.
        """
        out, problems = self._check(values)
        self._raise(problems, False)
        return out

    def parse(self, config: Mapping[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """The checked values of ``config`` keyed by field (:meth:`to_fields` then
        :meth:`check`); every problem of both steps is reported in one
        :class:`~trainers.errors.TrainerError`."""
        fields, problems, unknown = self._split(config, strict)
        out, bad_values = self._check(fields)
        self._raise(problems + bad_values, unknown)
        return out

    def _split(self, config: Mapping[str, Any], strict: bool) -> tuple[dict, list[str], bool]:
        if not isinstance(config, Mapping):
            raise TrainerError(f"{self.owner} config must be a mapping, got "
                               f"{type(config).__name__}")
        out: dict[str, Any] = {}
        seen: dict[str, str] = {}
        problems: list[str] = []
        unknown = False
        for key, value in config.items():
            knob = self._spelling.get(key)
            if knob is None:
                if strict:
                    problems.append(self.unknown_key(key))
                    unknown = True
            elif knob.name in seen:
                problems.append(f"{seen[knob.name]!r} and {key!r} are two spellings of knob "
                                f"{knob.name!r}: give one")
            else:
                seen[knob.name] = key
                out[knob.field] = value
        return out, problems, unknown

    def _check(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        out: dict[str, Any] = {}
        problems: list[str] = []
        for field, value in values.items():
            try:
                out[field] = self._field[field].parse(value)
            except TrainerError as exc:
                problems.append(str(exc))
        return out, problems

    def _raise(self, problems: list[str], unknown: bool) -> None:
        if problems:
            valid = f". Valid keys: {', '.join(self.spellings())}" if unknown else ""
            raise TrainerError(f"invalid {self.owner} config: " + "; ".join(problems) + valid)

    def validate_object(self, obj: Any) -> None:
        """Check the knob fields of a frozen dataclass instance in place (normalised values
        are written back); raises like :meth:`check`."""
        present = {f: getattr(obj, f) for f in self._field if hasattr(obj, f)}
        for field, value in self.check(present).items():
            object.__setattr__(obj, field, value)


def knob_dataclass(table: KnobTable) -> Callable[[type], type]:
    """Class decorator: ``cls`` as a frozen dataclass with one field per knob of ``table``
    (field name, type and default from the knob; ``metadata["key"]`` is the knob's name).

    ``__post_init__`` checks and normalises every field (:meth:`KnobTable.validate_object`),
    then calls ``cls._check_fields(self)`` when ``cls`` defines it (cross-field rules).
    """

    def wrap(cls: type) -> type:
        annotations: dict[str, Any] = {}
        for knob in table.values():
            annotations[knob.field] = knob.annotation
            setattr(cls, knob.field, dataclasses.field(
                default=knob.default, metadata={"key": knob.name, "knob": knob}))
        cls.__annotations__ = annotations

        def __post_init__(self: Any) -> None:
            table.validate_object(self)
            extra = getattr(type(self), "_check_fields", None)
            if extra is not None:
                extra(self)

        cls.__post_init__ = __post_init__
        return dataclass(frozen=True)(cls)

    return wrap


# ----------------------------------------------------------------------------------------------
# the declarations

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "adamp")
NAS_OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("cosine", "step", "multistep", "plateau")
AUGMENTATIONS = ("auto-augment", "random-augment", "trivial-augment", "none")
AUTO_AUGMENT_POLICIES = ("v0", "original")
TASKS = ("classification", "detection", "segmentation")
REWARDS = ("soft", "hard")
SPLITS = ("test", "holdout")


def _f(name: str, default: float, doc: str, low: float | None = 0.0, high: float | None = None,
       **kw: Any) -> Knob:
    return Knob(name, "float", default, doc, low=low, high=high, **kw)


def _i(name: str, default: int | None, doc: str, low: int | None = 0, high: int | None = None,
       **kw: Any) -> Knob:
    return Knob(name, "int", default, doc, low=low, high=high, **kw)


def _b(name: str, doc: str, default: bool = False) -> Knob:
    return Knob(name, "bool", default, doc)


# model & freezing
MODEL = Knob("model", "name", "resnet10t", "timm model name (any of timm.list_models())")
PRETRAINED = Knob("pretrained", "pretrained", False,
                  "false: random init; true: timm's pretrained weights; a path: a local "
                  "checkpoint (state_dict) whose classifier is kept as the source head")
PCT_TO_FREEZE = _f("pct-to-freeze", 0.0, "fraction of the backbone frozen from the input side "
                   "(by parameter elements); 1.0 = head only", high=1.0)
LINEAR_PROBING = _b("linear-probing", "train the head only for the first half of the epochs")
LAYER_DECAY = _f("layer-decay", 0.0, "per-layer LR scale ld ** depth (timm layer_decay); 0 = off",
                 high=1.0)
STOCH_NORM = _b("stoch-norm", "replace every BatchNorm with StochNorm (p = 0.5)")
DROP = _f("drop", 0.0, "dropout before the classifier (timm drop_rate)", high=1.0)
# regularisers
SP_REG = _f("sp-reg", 0.0, "L2-SP weight: alpha * ||w - w0||^2 over the backbone")
DELTA_REG = _f("delta-reg", 0.0, "DELTA weight: alpha * ||f(x) - f0(x)||^2 on pre-logit features")
BSS_REG = _f("bss-reg", 0.0, "Batch Spectral Shrinkage weight (smallest singular value squared)")
COTUNING_REG = _f("cotuning-reg", 0.0, "Co-Tuning weight; > 0 needs a pretrained source head")
# mixing / loss
MIXUP = _f("mixup", 0.0, "Mixup alpha (0 = off)")
MIXUP_PROB = _f("mixup-prob", 1.0, "probability that Mixup/CutMix is applied to a batch", high=1.0)
CUTMIX = _f("cutmix", 0.0, "CutMix alpha (0 = off)")
SMOOTHING = _f("smoothing", 0.0, "label smoothing of the cross-entropy targets", high=1.0,
               aliases=("label_smoothing",))
# optimisation
CLIP_GRAD = _f("clip-grad", 0.0, "clip the global gradient norm to this value (0 = off)",
               aliases=("grad_clip",))
AMP = _b("amp", "automatic mixed precision (bf16 where supported, else fp16 + GradScaler)")
OPT = Knob("opt", "choice", "adamw", "optimiser: sgd (Nesterov, momentum 0.9), momentum (SGD "
           "with momentum), adam, adamw, adamp", choices=OPTIMIZERS, aliases=("optimizer",))
OPT_BETAS = Knob("opt-betas", "betas", "0.9 0.999", "Adam-family betas 'b1 b2'")
LR = _f("lr", 1e-3, "peak learning rate", low_open=True)
MOMENTUM = _f("momentum", 0.9, "SGD momentum (opt momentum; the nas trainer's sgd)", high=1.0)
WEIGHT_DECAY = _f("weight-decay", 0.0, "weight decay (not applied to biases and norm weights)",
                  aliases=("weight_decay",))
BATCH_SIZE = _i("batch-size", 64, "training batch size", low=1, aliases=("batch_size",))
SCHED = Knob("sched", "choice", "cosine", "LR schedule (timm create_scheduler_v2)",
             choices=SCHEDULERS)
WARMUP_EPOCHS = _i("warmup_epochs", 0, "epochs of linear LR warm-up")
WARMUP_LR = _f("warmup-lr", 0.0, "LR at the start of the warm-up")
PATIENCE_EPOCHS = _i("patience-epochs", 10, "plateau schedule: epochs without improvement")
DECAY_RATE = _f("decay-rate", 0.1, "step/multistep/plateau: LR multiplier at each decay",
                high=1.0, low_open=True)
DECAY_EPOCHS = _i("decay-epochs", 10, "step/multistep: epochs between decays", low=1)
# data augmentation
DATA_AUGMENTATION = Knob("data-augmentation", "choice", "none", "augmentation op on top of the "
                         "training transform", choices=AUGMENTATIONS)
AUTO_AUGMENT = Knob("auto-augment", "choice", "v0", "AutoAugment policy (data-augmentation "
                    "auto-augment)", choices=AUTO_AUGMENT_POLICIES)
RA_NUM_OPS = _i("ra-num-ops", 2, "RandAugment: ops per image", low=1)
RA_MAGNITUDE = _i("ra-magnitude", 9, "RandAugment: magnitude on torchvision's 31-bin scale",
                  high=30)
# data & run settings
DATASET = Knob("dataset", "name", "digits", "dataset name (trainers.data.list_datasets())")
DATA_DIR = Knob("data_dir", "path", None, "root folder of an imagefolder or torchvision dataset",
                optional=True)
DOWNLOAD = _b("download", "let torchvision download a missing dataset")
DATA_FRACTION = _f("data_fraction", 1.0, "fraction of the training images kept (stratified)",
                   high=1.0, low_open=True)
IMAGE_SIZE = _i("image_size", None, "input side in pixels (null: the model's default)", low=1,
                optional=True)
TRAIN_CROP_SCALE = _f("train_crop_scale", 0.08, "lower bound of the training RandomResizedCrop "
                      "scale (timm's 0.08); raise it for tiny inputs such as upscaled 8x8 digits",
                      high=1.0, low_open=True)
TRAIN_HFLIP = _f("train_hflip", 0.5, "probability of a horizontal flip in training (timm's 0.5); "
                 "0 for data whose classes flipping changes, such as digits", high=1.0)
VAL_FRACTION = _f("val_fraction", 0.2, "fraction held out for validation when the dataset has "
                  "no validation split", high=1.0, low_open=True, high_open=True)
NUM_WORKERS = _i("num_workers", 0, "DataLoader worker processes")
NUM_CLASSES = _i("num_classes", None, "number of classes (null: from the dataset)", low=1,
                 optional=True)
EVAL_BATCH_SIZE = _i("eval_batch_size", None, "validation batch size (null: max(batch-size, 128))",
                     low=1, optional=True)
DEVICE = Knob("device", "device", "auto", "training device: auto (CUDA when available), cpu, "
              "cuda[:N]")
DETERMINISTIC = _b("deterministic", "deterministic torch algorithms")
CHECKPOINT_EVERY = _i("checkpoint_every", 1, "checkpoint every N epochs (0: never)")
DATA_SEED = _i("seed", 0, "data seed fixing the held-out split and the data_fraction subset",
               low=None)
SPLIT = Knob("split", "choice", None, "validation images: null (the dataset's own split, else a "
             "held-out part), test (require the dataset's split), holdout (always hold out)",
             choices=SPLITS, optional=True)
# nas trainer
ARCH = Knob("arch", "name", "mnasnet", "architecture space / builder name")
TASK = Knob("task", "choice", "classification", "classification, detection (RetinaNet) or "
            "segmentation (per-pixel classes, light FPN head)", choices=TASKS)
NUM_TRAIN_IMAGES = _i("num_train_images", 256, "synthetic detection/segmentation: training "
                      "images", low=1)
NUM_VAL_IMAGES = _i("num_val_images", 64, "synthetic detection/segmentation: validation images",
                    low=1)
LATENCY_TARGET = _f("latency_target", None, "latency target in ms; when set, reward is reported",
                    low_open=True, optional=True)
REWARD = Knob("reward", "choice", "soft", "soft: metric * (target / latency) ** reward_weight; "
              "hard: metric * min(target / latency, 1)", choices=REWARDS)
REWARD_WEIGHT = _f("reward_weight", 0.07, "exponent of the soft reward")
LATENCY_DEVICE = DEVICE.replace(name="latency_device", default="cpu",
                                doc="device that latency is measured on (cpu: comparable "
                                    "across machines)")
LATENCY_WARMUP = _i("latency_warmup", 3, "untimed runs before the latency is measured")
LATENCY_REPEATS = _i("latency_repeats", 10, "timed runs at batch 1 (their latency_stat is "
                     "reported)", low=1)
LATENCY_STAT = Knob("latency_stat", "choice", "median", "statistic of the timed runs reported "
                    "as latency_ms: median, or min (the fastest run: steadier when other "
                    "processes share the CPU)", choices=("median", "min"))
AUGMENT = Knob("augment", "name", None, "augmentation space (randaugment, autoaugment, ...) or "
               "none; null: inferred from the augmentation parameters present", optional=True)

FINETUNE_KNOBS = KnobTable("finetune trainer", [
    MODEL, PRETRAINED, PCT_TO_FREEZE, LINEAR_PROBING, LAYER_DECAY, STOCH_NORM, DROP,
    SP_REG, DELTA_REG, BSS_REG, COTUNING_REG,
    MIXUP, MIXUP_PROB, CUTMIX, SMOOTHING,
    CLIP_GRAD, AMP, OPT, OPT_BETAS, LR, MOMENTUM, WEIGHT_DECAY, BATCH_SIZE, SCHED, WARMUP_EPOCHS,
    WARMUP_LR, PATIENCE_EPOCHS, DECAY_RATE, DECAY_EPOCHS,
    DATA_AUGMENTATION, AUTO_AUGMENT, RA_NUM_OPS, RA_MAGNITUDE,
    DATASET, DATA_DIR, DOWNLOAD, DATA_FRACTION, IMAGE_SIZE, TRAIN_CROP_SCALE, TRAIN_HFLIP,
    VAL_FRACTION, NUM_WORKERS, NUM_CLASSES,
    DEVICE, DETERMINISTIC, CHECKPOINT_EVERY, EVAL_BATCH_SIZE,
])
"""The ``finetune`` trainer (:class:`trainers.config.TrainerConfig`)."""

NAS_KNOBS = KnobTable("nas trainer", [
    ARCH, TASK,
    DATASET.replace(default=None, optional=True,
                    doc="dataset name (null: digits for classification, synthetic-shapes for "
                        "detection and segmentation; segmentation also reads voc and coco "
                        "folders)"),
    DATA_DIR, DOWNLOAD, DATA_FRACTION, VAL_FRACTION,
    IMAGE_SIZE.replace(low=8, doc="input side in pixels (null: 32 classification, 64 detection "
                                  "and segmentation)"),
    NUM_CLASSES, NUM_TRAIN_IMAGES, NUM_VAL_IMAGES, NUM_WORKERS,
    BATCH_SIZE.replace(default=32, field="batch_size"),
    OPT.replace(default="sgd", choices=NAS_OPTIMIZERS, field="optimizer",
                doc="optimiser: sgd (momentum, Nesterov when momentum > 0) or adamw"),
    LR.replace(default=0.05, doc="peak LR of the cosine schedule (after the warm-up)"),
    MOMENTUM,
    WEIGHT_DECAY.replace(default=4e-5, field="weight_decay"),
    SMOOTHING.replace(field="label_smoothing"),
    WARMUP_EPOCHS,
    CLIP_GRAD.replace(default=None, optional=True, field="grad_clip",
                      doc="clip the global gradient norm to this value (null or 0: off)"),
    LATENCY_TARGET, REWARD, REWARD_WEIGHT, LATENCY_DEVICE,
    LATENCY_WARMUP, LATENCY_REPEATS, LATENCY_STAT, AUGMENT, DEVICE, DETERMINISTIC,
    CHECKPOINT_EVERY,
])
"""The ``nas`` trainer's run settings (:class:`trainers.nas.settings.NasTrainConfig`)."""

DATA_KNOBS = KnobTable("data", [
    DATASET, DATA_DIR, DOWNLOAD, DATA_FRACTION,
    IMAGE_SIZE.replace(default=32, optional=False, doc="input side in pixels"),
    VAL_FRACTION, DATA_SEED, NUM_WORKERS,
    BATCH_SIZE.replace(name="batch_size", aliases=("batch-size",)),
    EVAL_BATCH_SIZE, SPLIT,
])
"""The fields of :class:`trainers.data.DataConfig` (named as its keyword arguments)."""

TABLES: dict[str, KnobTable] = {"finetune": FINETUNE_KNOBS, "nas": NAS_KNOBS}
"""Trainer name -> its knob table (documented in ``docs/trainer-knobs.md``)."""


# ----------------------------------------------------------------------------------------------
# help and docs


def _fmt(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def help_text(width: int = 100) -> str:
    """The config keys of every trainer table: per knob, its spellings, rule and default, then
    its doc (the epilog of ``archtune train --help``)."""
    lines = []
    for trainer, table in TABLES.items():
        lines.append(f"config keys of trainer {trainer!r} (also in docs/trainer-knobs.md):")
        for knob in table.values():
            also = f" (or {', '.join(knob.aliases)})" if knob.aliases else ""
            lines.append(f"  {knob.name}{also}: {knob.rule}; default {_fmt(knob.default)}")
            lines += textwrap.wrap(knob.doc, width, initial_indent=" " * 6,
                                   subsequent_indent=" " * 6)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("*", "\\*")


def render_markdown() -> str:
    """``docs/trainer-knobs.md``: one table per trainer, generated from the declarations."""
    out = ["# Trainer knobs", "",
           ("Generated from `trainers/knobs.py` by `python -m trainers.knobs > "
            "docs/trainer-knobs.md`; do not edit by hand."), "",
           ("Every key is written as in the trial config (an experiment's `space`, `fixed` and "
            "`data:` sections). A key may also be written as any of its aliases, but not twice "
            "in one config. Unknown keys, wrong types and out-of-domain values are rejected "
            "before training, with the closest valid names."), ""]
    for trainer, table in TABLES.items():
        out += [f"## `{trainer}` trainer", "", "| key | aliases | value | default | meaning |",
                "|---|---|---|---|---|"]
        for knob in table.values():
            aliases = ", ".join(f"`{a}`" for a in knob.aliases)
            out.append(f"| `{knob.name}` | {aliases} | {_md_cell(knob.rule)} | "
                       f"`{_fmt(knob.default)}` | {_md_cell(knob.doc)} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(render_markdown(), end="")
