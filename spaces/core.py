"""Parameter types, conditions, forbidden clauses and :class:`SearchSpace`.

Pure Python + numpy. Parameters are frozen dataclasses validated in ``__post_init__``; a
:class:`SearchSpace` checks its conditions (parents exist, no cycles, legal values) once, then
precomputes a sampling plan in sorted topological order so sampling is a tight loop.

A configuration is a flat ``dict[str, value]``; inactive parameters are absent, never ``None``.

Example::

    space = SearchSpace(
        [Categorical("opt", ("sgd", "adam")), Float("lr", 1e-5, 1e-1, log=True),
         Ordinal("beta", (0.9, 0.99))],
        conditions=[Equals("beta", "opt", "adam")],
    )
    cfg = space.sample(0)
    space.validate(cfg)
"""
from __future__ import annotations

import bisect
import hashlib
import json
import math
import numbers
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from spaces.errors import SpaceError

_MAX_TRIES = 1000


def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def _py(v: Any) -> Any:
    """numpy scalars -> python scalars; tuples/lists recursively."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return type(v)(_py(x) for x in v)
    return v


def _is_real(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _key(v: Any) -> Any:
    """Hash key that keeps bools apart from ints (True != 1 for choices)."""
    if isinstance(v, (bool, np.bool_)):
        return ("__bool__", bool(v))
    return v


def _hashable_tuple(values: Any, what: str, name: str) -> tuple:
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"parameter {name!r}: {what} must be a sequence, got {values!r}")
    out = tuple(tuple(v) if isinstance(v, list) else _py(v) for v in values)
    if not out:
        raise ValueError(f"parameter {name!r}: {what} must not be empty")
    seen = set()
    dups = []
    for v in out:
        try:
            k = _key(v)
            if k in seen:
                dups.append(v)
            seen.add(k)
        except TypeError:
            raise ValueError(f"parameter {name!r}: {what} value {v!r} is not hashable") from None
    if dups:
        raise ValueError(f"parameter {name!r}: {what} contains duplicates {dups!r}")
    return out


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"parameter name must be a non-empty string, got {name!r}")


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


class Param:
    """Behaviour shared by every parameter type (the fields live on the dataclasses)."""

    name: str
    default: Any
    meta: dict | None
    is_discrete: bool = True
    orderable: bool = False
    type_name: str = ""

    @property
    def values(self) -> tuple:
        raise ValueError(f"parameter {self.name!r} is continuous and has no finite value list")

    @property
    def cardinality(self) -> int | float:
        return len(self.values)

    def contains(self, v: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def normalize(self, v: Any) -> Any:
        return _py(v)

    def sample(self, rng: np.random.Generator | int | None = None) -> Any:
        return self._draw(float(_rng(rng).random()))

    # u in [0, 1) -> value. Used by the precomputed sampling plan.
    def _draw(self, u: float) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # vectorised: numeric column (indices for choice params, values for numbers)
    def _draw_column(self, u: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _column_values(self, col: np.ndarray) -> np.ndarray:
        return col.astype(object)

    def _column_of(self, v: Any) -> float:
        """Map a value to the numeric-column representation used in vector conditions."""
        return v

    def _order_key(self, v: Any) -> Any:
        return v

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping) -> "Param":
        if not isinstance(d, Mapping):
            raise SpaceError(f"parameter spec must be a mapping, got {d!r}")
        kind = str(d.get("type", "")).lower()
        cls = _PARAM_TYPES.get(kind)
        name = d.get("name", "?")
        if cls is None:
            raise SpaceError(
                f"parameter {name!r}: unknown type {d.get('type')!r}; "
                f"valid types: {', '.join(sorted(_PARAM_TYPES))}"
            )
        kw = {k: v for k, v in d.items() if k != "type"}
        try:
            if "choices" in kw:
                kw["choices"] = tuple(tuple(c) if isinstance(c, list) else c for c in kw["choices"])
            if "sequence" in kw:
                kw["sequence"] = tuple(tuple(c) if isinstance(c, list) else c for c in kw["sequence"])
            return cls(**kw)
        except TypeError as e:
            raise SpaceError(f"parameter {name!r} ({kind}): bad fields: {e}") from None

    def _meta_dict(self, d: dict) -> dict:
        if self.meta:
            d["meta"] = dict(self.meta)
        return d


class _ChoiceMixin(Param):
    """Shared by Categorical and Ordinal: a finite tuple of values stored as indices."""

    _choices: tuple

    def _init_choices(self, choices: tuple) -> None:
        object.__setattr__(self, "_lookup", {_key(v): i for i, v in enumerate(choices)})
        arr = np.empty(len(choices), dtype=object)
        for i, v in enumerate(choices):
            arr[i] = v
        object.__setattr__(self, "_obj", arr)

    @property
    def values(self) -> tuple:
        return self._choices

    @property
    def cardinality(self) -> int:
        return len(self._choices)

    def index(self, v: Any) -> int:
        try:
            return self._lookup[_key(_py(v) if isinstance(v, np.generic) else v)]
        except (KeyError, TypeError):
            raise ValueError(f"{v!r} is not a value of parameter {self.name!r}") from None

    def contains(self, v: Any) -> bool:
        try:
            return _key(_py(v) if isinstance(v, np.generic) else v) in self._lookup
        except TypeError:
            return False

    def normalize(self, v: Any) -> Any:
        return self._choices[self.index(v)]

    def _column_values(self, col: np.ndarray) -> np.ndarray:
        return self._obj[col]

    def _column_of(self, v: Any) -> float:
        return self.index(v)


@dataclass(frozen=True)
class Categorical(_ChoiceMixin):
    """Unordered finite choice. ``weights`` (optional, non-negative) bias sampling.

    The default is the first choice unless given; it must be one of ``choices``.
    """

    name: str
    choices: tuple
    default: Any = None
    weights: tuple | None = None
    meta: dict | None = field(default=None, compare=False)
    type_name = "categorical"

    def __post_init__(self) -> None:
        _check_name(self.name)
        choices = _hashable_tuple(self.choices, "choices", self.name)
        object.__setattr__(self, "choices", choices)
        object.__setattr__(self, "_choices", choices)
        self._init_choices(choices)
        if self.default is None and not self.contains(None):
            object.__setattr__(self, "default", choices[0])
        elif not self.contains(self.default):
            raise ValueError(
                f"parameter {self.name!r}: default {self.default!r} is not one of the choices {choices!r}"
            )
        else:
            object.__setattr__(self, "default", self.normalize(self.default))
        if self.weights is not None:
            w = tuple(float(x) for x in self.weights)
            if len(w) != len(choices):
                raise ValueError(
                    f"parameter {self.name!r}: {len(w)} weights for {len(choices)} choices"
                )
            if any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
                raise ValueError(
                    f"parameter {self.name!r}: weights {w!r} must be finite, >= 0 and not all 0"
                )
            object.__setattr__(self, "weights", w)
            total = sum(w)
            cum = list(np.cumsum([x / total for x in w]))
            cum[-1] = 1.0
            object.__setattr__(self, "_cum", tuple(cum))
            object.__setattr__(self, "_cum_arr", np.asarray(cum))
        if self.meta is not None and not isinstance(self.meta, dict):
            raise ValueError(f"parameter {self.name!r}: meta must be a dict, got {self.meta!r}")

    def _draw(self, u: float) -> Any:
        if self.weights is None:
            return self._choices[int(u * len(self._choices))]
        return self._choices[min(bisect.bisect_right(self._cum, u), len(self._choices) - 1)]

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        if self.weights is None:
            return (u * len(self._choices)).astype(np.int64)
        return np.minimum(np.searchsorted(self._cum_arr, u, side="right"), len(self._choices) - 1)

    def to_dict(self) -> dict:
        d = {"type": "categorical", "name": self.name, "choices": list(self.choices),
             "default": self.default}
        if self.weights is not None:
            d["weights"] = list(self.weights)
        return self._meta_dict(d)

    def __hash__(self) -> int:
        return hash(("categorical", self.name, self.choices))


@dataclass(frozen=True)
class Ordinal(_ChoiceMixin):
    """Ordered finite sequence; comparisons (GreaterThan/LessThan) use positions."""

    name: str
    sequence: tuple
    default: Any = None
    meta: dict | None = field(default=None, compare=False)
    type_name = "ordinal"
    orderable = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        seq = _hashable_tuple(self.sequence, "sequence", self.name)
        object.__setattr__(self, "sequence", seq)
        object.__setattr__(self, "_choices", seq)
        self._init_choices(seq)
        if self.default is None and not self.contains(None):
            object.__setattr__(self, "default", seq[0])
        elif not self.contains(self.default):
            raise ValueError(
                f"parameter {self.name!r}: default {self.default!r} is not in the sequence {seq!r}"
            )
        else:
            object.__setattr__(self, "default", self.normalize(self.default))
        if self.meta is not None and not isinstance(self.meta, dict):
            raise ValueError(f"parameter {self.name!r}: meta must be a dict, got {self.meta!r}")

    def _draw(self, u: float) -> Any:
        return self._choices[int(u * len(self._choices))]

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        return (u * len(self._choices)).astype(np.int64)

    def _order_key(self, v: Any) -> Any:
        return self.index(v)

    def to_dict(self) -> dict:
        return self._meta_dict({"type": "ordinal", "name": self.name,
                                "sequence": list(self.sequence), "default": self.default})

    def __hash__(self) -> int:
        return hash(("ordinal", self.name, self.sequence))


@dataclass(frozen=True)
class Int(Param):
    """Integer in ``[low, high]`` (both inclusive), optionally log-uniform or on a ``step`` grid.

    ``log`` needs ``low > 0`` and cannot be combined with ``step > 1``; ``high - low`` must be a
    multiple of ``step``.
    """

    name: str
    low: int
    high: int
    default: int | None = None
    log: bool = False
    step: int = 1
    meta: dict | None = field(default=None, compare=False)
    type_name = "int"
    orderable = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        n = self.name
        for attr in ("low", "high", "step"):
            v = getattr(self, attr)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not _is_int(v):
                raise ValueError(f"parameter {n!r}: {attr} must be an integer, got {v!r}")
            object.__setattr__(self, attr, int(v))
        if self.low > self.high:
            raise ValueError(f"parameter {n!r}: low={self.low} must be <= high={self.high}")
        if self.step < 1:
            raise ValueError(f"parameter {n!r}: step={self.step} must be >= 1")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {n!r}: log=True needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise ValueError(f"parameter {n!r}: log=True and step={self.step} cannot be combined")
        if (self.high - self.low) % self.step:
            raise ValueError(
                f"parameter {n!r}: high - low = {self.high - self.low} is not a multiple of "
                f"step={self.step}"
            )
        if self.default is None:
            if self.log:
                d = int(round(math.sqrt(self.low * self.high)))
            else:
                d = self.low + self.step * (((self.high - self.low) // self.step) // 2)
            object.__setattr__(self, "default", d)
        elif not self.contains(self.default):
            raise ValueError(
                f"parameter {n!r}: default {self.default!r} is outside [{self.low}, {self.high}]"
                + (f" with step {self.step}" if self.step != 1 else "")
            )
        else:
            object.__setattr__(self, "default", int(self.default))
        if self.meta is not None and not isinstance(self.meta, dict):
            raise ValueError(f"parameter {n!r}: meta must be a dict, got {self.meta!r}")
        object.__setattr__(self, "_card", (self.high - self.low) // self.step + 1)
        if self.log:
            object.__setattr__(self, "_lo", math.log(self.low - 0.5 if self.low > 0.5 else self.low))
            object.__setattr__(self, "_hi", math.log(self.high + 0.5))

    @property
    def values(self) -> tuple:
        return tuple(range(self.low, self.high + 1, self.step))

    @property
    def cardinality(self) -> int:
        return self._card

    def contains(self, v: Any) -> bool:
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not _is_int(v):
            return False
        return self.low <= v <= self.high and (v - self.low) % self.step == 0

    def normalize(self, v: Any) -> int:
        return int(v)

    def _draw(self, u: float) -> int:
        if self.log:
            v = int(round(math.exp(self._lo + u * (self._hi - self._lo))))
            return min(max(v, self.low), self.high)
        return self.low + self.step * int(u * self._card)

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        if self.log:
            v = np.rint(np.exp(self._lo + u * (self._hi - self._lo))).astype(np.int64)
            return np.clip(v, self.low, self.high)
        return self.low + self.step * (u * self._card).astype(np.int64)

    def to_dict(self) -> dict:
        d = {"type": "int", "name": self.name, "low": self.low, "high": self.high,
             "default": self.default}
        if self.log:
            d["log"] = True
        if self.step != 1:
            d["step"] = self.step
        return self._meta_dict(d)

    def __hash__(self) -> int:
        return hash(("int", self.name, self.low, self.high, self.log, self.step))


@dataclass(frozen=True)
class Float(Param):
    """Real number in ``[low, high]`` (both inclusive), optionally log-uniform or on a grid.

    ``log`` needs ``low > 0`` and cannot be combined with ``step``; with ``step`` the parameter is
    discrete (values ``low, low+step, ..., high``).
    """

    name: str
    low: float
    high: float
    default: float | None = None
    log: bool = False
    step: float | None = None
    meta: dict | None = field(default=None, compare=False)
    type_name = "float"
    orderable = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        n = self.name
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if not _is_real(v) or not math.isfinite(v):
                raise ValueError(f"parameter {n!r}: {attr} must be a finite number, got {v!r}")
            object.__setattr__(self, attr, float(v))
        if self.low > self.high:
            raise ValueError(f"parameter {n!r}: low={self.low} must be <= high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {n!r}: log=True needs low > 0, got low={self.low}")
        if self.step is not None:
            if not _is_real(self.step) or not self.step > 0:
                raise ValueError(f"parameter {n!r}: step must be a number > 0, got {self.step!r}")
            if self.log:
                raise ValueError(f"parameter {n!r}: log=True and step={self.step} cannot be combined")
            object.__setattr__(self, "step", float(self.step))
            k = (self.high - self.low) / self.step
            if abs(k - round(k)) > 1e-8 * max(1.0, k):
                raise ValueError(
                    f"parameter {n!r}: high - low = {self.high - self.low} is not a multiple of "
                    f"step={self.step}"
                )
            object.__setattr__(self, "_card", int(round(k)) + 1)
            object.__setattr__(self, "is_discrete", True)
        else:
            object.__setattr__(self, "is_discrete", self.low == self.high)
            object.__setattr__(self, "_card", 1 if self.low == self.high else math.inf)
        if self.default is None:
            if self.log:
                d = math.sqrt(self.low * self.high)
            else:
                d = (self.low + self.high) / 2
            if self.step is not None:
                d = self._snap(d)
            object.__setattr__(self, "default", d)
        elif not self.contains(self.default):
            raise ValueError(
                f"parameter {n!r}: default {self.default!r} is outside [{self.low}, {self.high}]"
                + (f" with step {self.step}" if self.step else "")
            )
        else:
            object.__setattr__(self, "default", self.normalize(self.default))
        if self.meta is not None and not isinstance(self.meta, dict):
            raise ValueError(f"parameter {n!r}: meta must be a dict, got {self.meta!r}")
        if self.log:
            object.__setattr__(self, "_lo", math.log(self.low))
            object.__setattr__(self, "_hi", math.log(self.high))

    def _snap(self, v: float) -> float:
        i = min(max(int(round((v - self.low) / self.step)), 0), self._card - 1)
        return float(round(self.low + i * self.step, 12))

    @property
    def values(self) -> tuple:
        if self.step is None:
            if self.low == self.high:
                return (self.low,)
            return super().values
        return tuple(self._snap(self.low + i * self.step) for i in range(self._card))

    @property
    def cardinality(self) -> int | float:
        return self._card

    def contains(self, v: Any) -> bool:
        if not _is_real(v):
            return False
        v = float(v)
        if not (self.low <= v <= self.high):
            return False
        if self.step is not None:
            k = (v - self.low) / self.step
            return abs(k - round(k)) <= 1e-6
        return True

    def normalize(self, v: Any) -> float:
        v = float(v)
        return self._snap(v) if self.step is not None else v

    def _draw(self, u: float) -> float:
        if self.step is not None:
            return self._snap(self.low + self.step * int(u * self._card))
        if self.log:
            return min(max(math.exp(self._lo + u * (self._hi - self._lo)), self.low), self.high)
        return self.low + u * (self.high - self.low)

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        if self.step is not None:
            return np.round(self.low + self.step * (u * self._card).astype(np.int64), 12)
        if self.log:
            return np.clip(np.exp(self._lo + u * (self._hi - self._lo)), self.low, self.high)
        return self.low + u * (self.high - self.low)

    def to_dict(self) -> dict:
        d = {"type": "float", "name": self.name, "low": self.low, "high": self.high,
             "default": self.default}
        if self.log:
            d["log"] = True
        if self.step is not None:
            d["step"] = self.step
        return self._meta_dict(d)

    def __hash__(self) -> int:
        return hash(("float", self.name, self.low, self.high, self.log, self.step))


@dataclass(frozen=True)
class Constant(Param):
    """A fixed value (one choice)."""

    name: str
    value: Any
    meta: dict | None = field(default=None, compare=False)
    type_name = "constant"

    def __post_init__(self) -> None:
        _check_name(self.name)
        v = _py(self.value)
        if isinstance(v, list):
            v = tuple(v)
        try:
            hash(v)
        except TypeError:
            raise ValueError(f"parameter {self.name!r}: constant value {v!r} is not hashable") from None
        object.__setattr__(self, "value", v)
        if self.meta is not None and not isinstance(self.meta, dict):
            raise ValueError(f"parameter {self.name!r}: meta must be a dict, got {self.meta!r}")

    @property
    def default(self) -> Any:  # type: ignore[override]
        return self.value

    @property
    def values(self) -> tuple:
        return (self.value,)

    @property
    def cardinality(self) -> int:
        return 1

    def contains(self, v: Any) -> bool:
        try:
            return _key(_py(v)) == _key(self.value) or (
                isinstance(v, list) and tuple(v) == self.value)
        except TypeError:
            return False

    def normalize(self, v: Any) -> Any:
        return self.value

    def _draw(self, u: float) -> Any:
        return self.value

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        return np.zeros(len(u), dtype=np.int64)

    def _column_values(self, col: np.ndarray) -> np.ndarray:
        out = np.empty(len(col), dtype=object)
        out[:] = [self.value] * len(col)
        return out

    def _column_of(self, v: Any) -> float:
        return 0

    def to_dict(self) -> dict:
        return self._meta_dict({"type": "constant", "name": self.name, "value": self.value})

    def __hash__(self) -> int:
        return hash(("constant", self.name, self.value))


_PARAM_TYPES: dict[str, type] = {
    "categorical": Categorical, "ordinal": Ordinal, "int": Int, "float": Float,
    "constant": Constant,
}

# --------------------------------------------------------------------------------------------
# Conditions
# --------------------------------------------------------------------------------------------


class Condition:
    """``child`` is active iff its parents are active and ``evaluate(config)`` holds."""

    child: str

    @property
    def parents(self) -> set[str]:
        raise NotImplementedError

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping) -> "Condition":
        kind = str(d.get("type", "")).lower() if isinstance(d, Mapping) else ""
        if kind in ("and", "or"):
            subs = [Condition.from_dict(c) for c in d.get("conditions", ())]
            return (And if kind == "and" else Or)(*subs)
        cls = _COND_TYPES.get(kind)
        if cls is None:
            raise SpaceError(
                f"condition {d!r}: unknown type {kind!r}; valid types: "
                f"{', '.join(sorted([*_COND_TYPES, 'and', 'or']))}"
            )
        if cls is In:
            return In(d["child"], d["parent"], tuple(d["values"]))
        return cls(d["child"], d["parent"], d["value"])

    # space-level checks and compilation; ``params`` is the space's param dict
    def _check(self, params: Mapping[str, Param]) -> list[str]:
        raise NotImplementedError

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        raise NotImplementedError

    def _vcompile(self, params: Mapping[str, Param]) -> Callable[[Mapping], np.ndarray]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Simple(Condition):
    child: str
    parent: str
    value: Any
    _op: Callable = field(default=None, init=False, repr=False, compare=False)  # type: ignore
    _sym: str = field(default="", init=False, repr=False, compare=False)
    _orderable: bool = field(default=False, init=False, repr=False, compare=False)
    _kind: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _py(self.value))

    @property
    def parents(self) -> set[str]:
        return {self.parent}

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return bool(self._op(config[self.parent], self.value))

    def __str__(self) -> str:
        return f"{self.child} | {self.parent} {self._sym} {self.value!r}"

    def to_dict(self) -> dict:
        return {"type": self._kind, "child": self.child, "parent": self.parent, "value": self.value}

    def _check(self, params: Mapping[str, Param]) -> list[str]:
        errs = []
        if self.child == self.parent:
            return [f"condition '{self}': child {self.child!r} cannot be its own parent"]
        if self.child not in params:
            errs.append(f"condition '{self}': child {self.child!r} is not a parameter of the space")
        if self.parent not in params:
            errs.append(
                f"condition '{self}': parent {self.parent!r} of {self.child!r} is missing from the space"
            )
            return errs
        p = params[self.parent]
        if self._orderable and not p.orderable:
            errs.append(
                f"condition '{self}': {type(self).__name__} needs an orderable parent, but "
                f"{self.parent!r} is {p.type_name}"
            )
        for v in self._values():
            if not isinstance(p, Constant) and not p.contains(v):
                errs.append(
                    f"condition '{self}': value {v!r} is not in the domain of parent {self.parent!r}"
                )
        return errs

    def _values(self) -> tuple:
        return (self.value,)

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        p = params[self.parent]
        name, op = self.parent, self._op
        if isinstance(p, Ordinal) and self._orderable:
            ref = p.index(self.value)
            key = p._lookup
            return lambda c: op(key[_key(c[name])], ref)
        val = self.value
        return lambda c: op(c[name], val)

    def _vcompile(self, params: Mapping[str, Param]) -> Callable[[Mapping], np.ndarray]:
        p = params[self.parent]
        name, op = self.parent, self._op
        ref = p._column_of(self.value) if p.contains(self.value) else None
        if ref is None:
            return lambda cols: np.zeros(len(cols[name]), dtype=bool)
        return lambda cols: op(cols[name], ref)


def _mk(kind: str, sym: str, op: Callable, orderable: bool = False):
    def __post_init__(self):
        _Simple.__post_init__(self)
        object.__setattr__(self, "_op", op)
        object.__setattr__(self, "_sym", sym)
        object.__setattr__(self, "_orderable", orderable)
        object.__setattr__(self, "_kind", kind)
    return __post_init__


@dataclass(frozen=True)
class Equals(_Simple):
    """child active iff ``config[parent] == value``."""
    __post_init__ = _mk("equals", "==", operator.eq)


@dataclass(frozen=True)
class NotEquals(_Simple):
    """child active iff ``config[parent] != value``."""
    __post_init__ = _mk("not_equals", "!=", operator.ne)


@dataclass(frozen=True)
class GreaterThan(_Simple):
    """child active iff ``config[parent] > value`` (ordinals compare by position)."""
    __post_init__ = _mk("greater_than", ">", operator.gt, orderable=True)


@dataclass(frozen=True)
class LessThan(_Simple):
    """child active iff ``config[parent] < value`` (ordinals compare by position)."""
    __post_init__ = _mk("less_than", "<", operator.lt, orderable=True)


@dataclass(frozen=True)
class In(Condition):
    """child active iff ``config[parent] in values``."""

    child: str
    parent: str
    values: tuple

    def __post_init__(self) -> None:
        if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Iterable):
            raise ValueError(f"In({self.child!r}, {self.parent!r}): values must be a sequence")
        vals = tuple(_py(v) for v in self.values)
        if not vals:
            raise ValueError(f"In({self.child!r}, {self.parent!r}): values must not be empty")
        object.__setattr__(self, "values", vals)

    @property
    def parents(self) -> set[str]:
        return {self.parent}

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return config[self.parent] in self.values

    def __str__(self) -> str:
        return f"{self.child} | {self.parent} in {list(self.values)!r}"

    def to_dict(self) -> dict:
        return {"type": "in", "child": self.child, "parent": self.parent, "values": list(self.values)}

    _check = _Simple._check
    _orderable = False

    def _values(self) -> tuple:
        return self.values

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        name = self.parent
        keys = frozenset(_key(v) for v in self.values)
        return lambda c: _key(c[name]) in keys

    def _vcompile(self, params: Mapping[str, Param]) -> Callable[[Mapping], np.ndarray]:
        p = params[self.parent]
        name = self.parent
        refs = [p._column_of(v) for v in self.values if p.contains(v)]
        return lambda cols: np.isin(cols[name], refs)


@dataclass(frozen=True, init=False)
class _Conj(Condition):
    conditions: tuple

    def __init__(self, *conditions: Condition):
        if len(conditions) == 1 and isinstance(conditions[0], (list, tuple)):
            conditions = tuple(conditions[0])
        if len(conditions) < 2:
            raise ValueError(f"{type(self).__name__} needs at least two conditions, got {len(conditions)}")
        for c in conditions:
            if not isinstance(c, Condition):
                raise ValueError(f"{type(self).__name__}: {c!r} is not a condition")
        children = {c.child for c in conditions}
        if len(children) != 1:
            raise ValueError(
                f"{type(self).__name__}: all conditions must share one child, got {sorted(children)}"
            )
        object.__setattr__(self, "conditions", tuple(conditions))

    @property
    def child(self) -> str:  # type: ignore[override]
        return self.conditions[0].child

    @property
    def parents(self) -> set[str]:
        out: set[str] = set()
        for c in self.conditions:
            out |= c.parents
        return out

    def to_dict(self) -> dict:
        return {"type": self._kind, "conditions": [c.to_dict() for c in self.conditions]}

    def _check(self, params: Mapping[str, Param]) -> list[str]:
        errs: list[str] = []
        for c in self.conditions:
            errs.extend(c._check(params))
        return errs

    def __str__(self) -> str:
        sep = " && " if self._kind == "and" else " || "
        return "(" + sep.join(str(c) for c in self.conditions) + ")"


class And(_Conj):
    """All sub-conditions hold."""
    _kind = "and"

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return all(c.evaluate(config) for c in self.conditions)

    def _compile(self, params):
        fs = [c._compile(params) for c in self.conditions]
        return lambda cfg: all(f(cfg) for f in fs)

    def _vcompile(self, params):
        fs = [c._vcompile(params) for c in self.conditions]

        def run(cols):
            out = fs[0](cols)
            for f in fs[1:]:
                out = out & f(cols)
            return out
        return run


class Or(_Conj):
    """At least one sub-condition holds."""
    _kind = "or"

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return any(c.evaluate(config) for c in self.conditions)

    def _compile(self, params):
        fs = [c._compile(params) for c in self.conditions]
        return lambda cfg: any(f(cfg) for f in fs)

    def _vcompile(self, params):
        fs = [c._vcompile(params) for c in self.conditions]

        def run(cols):
            out = fs[0](cols)
            for f in fs[1:]:
                out = out | f(cols)
            return out
        return run


_COND_TYPES: dict[str, type] = {
    "equals": Equals, "not_equals": NotEquals, "in": In, "greater_than": GreaterThan,
    "less_than": LessThan,
}

# --------------------------------------------------------------------------------------------
# Forbidden clauses
# --------------------------------------------------------------------------------------------


class Forbidden:
    """A combination of values that no valid configuration may contain."""

    @property
    def names(self) -> tuple[str, ...]:
        raise NotImplementedError

    def is_forbidden(self, config: Mapping[str, Any]) -> bool:
        """True iff every involved name is present (active) and the clause matches."""
        for n in self.names:
            if n not in config:
                return False
        return self._match(config)

    def _match(self, config: Mapping[str, Any]) -> bool:
        raise NotImplementedError

    def _check(self, params: Mapping[str, Param]) -> list[str]:
        return [f"forbidden '{self}': {n!r} is not a parameter of the space"
                for n in self.names if n not in params]

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping) -> "Forbidden":
        kind = str(d.get("type", "")).lower() if isinstance(d, Mapping) else ""
        if kind == "equals":
            return ForbiddenEquals(d["name"], d["value"])
        if kind == "in":
            return ForbiddenIn(d["name"], tuple(d["values"]))
        if kind == "and":
            return ForbiddenAnd(*[Forbidden.from_dict(c) for c in d["clauses"]])
        if kind == "relation":
            return ForbiddenRelation(d["left"], d["op"], d["right"])
        raise SpaceError(
            f"forbidden clause {d!r}: unknown type {kind!r}; valid types: and, equals, in, relation"
            " (predicates cannot be serialised)"
        )


def _check_values(fb: Forbidden, name: str, values: Iterable, params: Mapping[str, Param]) -> list[str]:
    if name not in params:
        return [f"forbidden '{fb}': {name!r} is not a parameter of the space"]
    p = params[name]
    if isinstance(p, Constant):  # a fixed parameter: the clause is simply always/never met
        return []
    return [f"forbidden '{fb}': value {v!r} is not in the domain of {name!r}"
            for v in values if not p.contains(v)]


@dataclass(frozen=True)
class ForbiddenEquals(Forbidden):
    """Forbid ``config[name] == value``."""

    name: str
    value: Any

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _py(self.value))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def _match(self, config):
        return _key(config[self.name]) == _key(self.value)

    def _check(self, params):
        return _check_values(self, self.name, (self.value,), params)

    def __str__(self) -> str:
        return f"{self.name} == {self.value!r}"

    def to_dict(self) -> dict:
        return {"type": "equals", "name": self.name, "value": self.value}


@dataclass(frozen=True)
class ForbiddenIn(Forbidden):
    """Forbid ``config[name] in values``."""

    name: str
    values: tuple

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(_py(v) for v in self.values))
        object.__setattr__(self, "_keys", frozenset(_key(v) for v in self.values))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def _match(self, config):
        return _key(config[self.name]) in self._keys

    def _check(self, params):
        return _check_values(self, self.name, self.values, params)

    def __str__(self) -> str:
        return f"{self.name} in {list(self.values)!r}"

    def to_dict(self) -> dict:
        return {"type": "in", "name": self.name, "values": list(self.values)}

    def __hash__(self) -> int:
        return hash((self.name, self.values))


@dataclass(frozen=True, init=False)
class ForbiddenAnd(Forbidden):
    """Forbid configurations matching every sub-clause."""

    clauses: tuple

    def __init__(self, *clauses: Forbidden):
        if len(clauses) == 1 and isinstance(clauses[0], (list, tuple)):
            clauses = tuple(clauses[0])
        if not clauses or not all(isinstance(c, Forbidden) for c in clauses):
            raise ValueError(f"ForbiddenAnd needs one or more forbidden clauses, got {clauses!r}")
        object.__setattr__(self, "clauses", tuple(clauses))

    @property
    def names(self) -> tuple[str, ...]:
        out: list[str] = []
        for c in self.clauses:
            out.extend(n for n in c.names if n not in out)
        return tuple(out)

    def _match(self, config):
        return all(c._match(config) for c in self.clauses)

    def _check(self, params):
        errs: list[str] = []
        for c in self.clauses:
            errs.extend(c._check(params))
        return errs

    def __str__(self) -> str:
        return " && ".join(f"({c})" for c in self.clauses)

    def to_dict(self) -> dict:
        return {"type": "and", "clauses": [c.to_dict() for c in self.clauses]}


_REL_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
            "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class ForbiddenRelation(Forbidden):
    """Forbid ``config[left] <op> config[right]``, op in ``== != < > <= >=``."""

    left: str
    op: str
    right: str

    def __post_init__(self) -> None:
        if self.op not in _REL_OPS:
            raise ValueError(f"ForbiddenRelation: op {self.op!r} must be one of {sorted(_REL_OPS)}")
        if self.left == self.right:
            raise ValueError(f"ForbiddenRelation: left and right are both {self.left!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.left, self.right)

    def _match(self, config):
        try:
            return bool(_REL_OPS[self.op](config[self.left], config[self.right]))
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"

    def to_dict(self) -> dict:
        return {"type": "relation", "left": self.left, "op": self.op, "right": self.right}


@dataclass(frozen=True)
class ForbiddenPredicate(Forbidden):
    """Forbid configurations for which ``fn(*values of names)`` is true (not serialisable)."""

    names_: tuple
    fn: Callable = field(compare=False)
    description: str = ""

    def __init__(self, names: Sequence[str], fn: Callable[..., bool], description: str = ""):
        if isinstance(names, str):
            names = (names,)
        if not names or not callable(fn):
            raise ValueError("ForbiddenPredicate needs one or more names and a callable fn")
        object.__setattr__(self, "names_", tuple(names))
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "description", description or getattr(fn, "__name__", "predicate"))

    @property
    def names(self) -> tuple[str, ...]:
        return self.names_

    def _match(self, config):
        return bool(self.fn(*(config[n] for n in self.names_)))

    def __str__(self) -> str:
        return f"{self.description}({', '.join(self.names_)})"

    def to_dict(self) -> dict:
        raise SpaceError(f"forbidden '{self}': a ForbiddenPredicate cannot be serialised")


# --------------------------------------------------------------------------------------------
# SearchSpace
# --------------------------------------------------------------------------------------------

_INACTIVE = object()


class SearchSpace:
    """A set of parameters with conditions and forbidden clauses.

    Built once and validated at construction (SpaceError names every broken rule). ``names`` is the
    sorted topological order used for sampling: parents always come before their children.
    """

    def __init__(self, params: Iterable[Param] | Mapping[str, Param],
                 conditions: Iterable[Condition] = (), forbiddens: Iterable[Forbidden] = (),
                 name: str = ""):
        if isinstance(params, Mapping):
            params = list(params.values())
        self.name = name
        errs: list[str] = []
        self.params: dict[str, Param] = {}
        for p in params:
            if not isinstance(p, Param):
                raise SpaceError(f"space {name!r}: {p!r} is not a parameter")
            if p.name in self.params:
                errs.append(f"parameter {p.name!r} is defined twice")
            self.params[p.name] = p
        self.conditions: tuple[Condition, ...] = tuple(conditions)
        self.forbiddens: tuple[Forbidden, ...] = tuple(forbiddens)
        for c in self.conditions:
            if not isinstance(c, Condition):
                errs.append(f"{c!r} is not a condition")
                continue
            errs.extend(c._check(self.params))
        for f in self.forbiddens:
            if not isinstance(f, Forbidden):
                errs.append(f"{f!r} is not a forbidden clause")
                continue
            errs.extend(f._check(self.params))
        if errs:
            raise SpaceError(errs, source=f"space {name!r}" if name else None)
        self._conds: dict[str, list[Condition]] = {}
        for c in self.conditions:
            self._conds.setdefault(c.child, []).append(c)
        self._parents: dict[str, tuple[str, ...]] = {
            n: tuple(sorted(set().union(*(c.parents for c in cs)))) for n, cs in self._conds.items()
        }
        self.names: list[str] = self._toposort()
        self._build_plan()
        self._default = self._make_default()
        bad = [f for f in self.forbiddens if f.is_forbidden(self._default)]
        if bad:
            raise SpaceError(
                [f"default configuration violates forbidden clause '{f}' "
                 f"(values: {', '.join(f'{n}={self._default[n]!r}' for n in f.names)})" for f in bad],
                source=f"space {name!r}" if name else None,
            )

    # ---- construction helpers -------------------------------------------------------------
    def _toposort(self) -> list[str]:
        import heapq

        children: dict[str, list[str]] = {n: [] for n in self.params}
        indeg = {n: 0 for n in self.params}
        for child, parents in self._parents.items():
            for p in parents:
                children[p].append(child)
                indeg[child] += 1
        heap = [n for n, d in indeg.items() if d == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            n = heapq.heappop(heap)
            order.append(n)
            for c in children[n]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(heap, c)
        if len(order) != len(self.params):
            cyc = sorted(n for n in self.params if indeg[n] > 0)
            raise SpaceError(
                f"cyclic conditions between parameters {cyc}: a parameter cannot (indirectly) "
                "condition itself", source=f"space {self.name!r}" if self.name else None)
        self._children = children
        return order

    def _build_plan(self) -> None:
        plan = []
        for n in self.names:
            p = self.params[n]
            conds = self._conds.get(n)
            fn = None
            if conds:
                fs = [c._compile(self.params) for c in conds]
                fn = fs[0] if len(fs) == 1 else (lambda c, fs=fs: all(f(c) for f in fs))
            plan.append((n, p._draw, fn, self._parents.get(n, ()), p))
        self._plan = plan
        self._n = len(plan)
        # fast membership per param for validation
        checks = []
        for n, _, fn, parents, p in plan:
            if isinstance(p, _ChoiceMixin):
                lk = p._lookup
                def contains(v, lk=lk):
                    try:
                        return (("__bool__", v) if v.__class__ is bool else v) in lk
                    except TypeError:
                        return False
            else:
                contains = p.contains
            checks.append((n, fn, parents, contains))
        self._checks = checks
        self._vconds = {n: [c._vcompile(self.params) for c in cs] for n, cs in self._conds.items()}

    def _make_default(self) -> dict:
        cfg: dict = {}
        for n, _, fn, parents, p in self._plan:
            if fn is not None and (any(q not in cfg for q in parents) or not fn(cfg)):
                continue
            cfg[n] = p.default
        return cfg

    # ---- mapping-like ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a parameter of space {self.name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __repr__(self) -> str:
        return (f"SearchSpace(name={self.name!r}, params={len(self.params)}, "
                f"conditions={len(self.conditions)}, forbiddens={len(self.forbiddens)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return (self.params == other.params and set(map(str, self.conditions)) ==
                set(map(str, other.conditions)) and set(map(str, self.forbiddens)) ==
                set(map(str, other.forbiddens)))

    __hash__ = None  # type: ignore[assignment]

    # ---- activity ----------------------------------------------------------------------------
    def conditions_for(self, name: str) -> list[Condition]:
        self[name]
        return list(self._conds.get(name, ()))

    def children_of(self, name: str) -> list[str]:
        return sorted(self._children.get(name, ()))

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """True iff every ancestor is active in ``config`` and every condition holds."""
        self[name]
        return name in self.active_names(config)

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        """Names (in topological order) active under ``config``'s values for their parents."""
        out: list[str] = []
        act: dict = {}
        for n, _, fn, parents, _p in self._plan:
            if fn is not None:
                if any(q not in act for q in parents):
                    continue
                try:
                    if not fn(act):
                        continue
                except (KeyError, TypeError, ValueError):
                    continue
            out.append(n)
            act[n] = config.get(n, self.params[n].default) if isinstance(config, Mapping) else None
        return out

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None):
        """One config (``n`` None) or a list of ``n`` configs, all valid.

        Parameters are drawn in ``names`` order; forbidden combinations are redrawn (SpaceError
        after too many tries).
        """
        rng = _rng(rng)
        if n is None:
            return self._sample_one(rng)
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self._sample_batch(rng, int(n))

    def _sample_one(self, rng: np.random.Generator) -> dict:
        plan = self._plan
        forb = self.forbiddens
        for _ in range(_MAX_TRIES):
            us = rng.random(self._n).tolist()
            cfg: dict = {}
            i = 0
            for n, draw, fn, parents, _p in plan:
                if fn is not None:
                    ok = True
                    for q in parents:
                        if q not in cfg:
                            ok = False
                            break
                    if not ok or not fn(cfg):
                        i += 1
                        continue
                cfg[n] = draw(us[i])
                i += 1
            if not forb or not any(f.is_forbidden(cfg) for f in forb):
                return cfg
        raise self._too_many()

    def _too_many(self) -> SpaceError:
        return SpaceError(
            f"space {self.name!r}: no valid configuration found in {_MAX_TRIES} tries; the forbidden "
            f"clauses {[str(f) for f in self.forbiddens]} exclude (almost) everything")

    def _sample_batch(self, rng: np.random.Generator, n: int) -> list[dict]:
        if n == 0:
            return []
        out: list[dict] = []
        need = n
        for _ in range(_MAX_TRIES):
            rows = self._batch_rows(rng, need)
            if self.forbiddens:
                rows = [r for r in rows if not any(f.is_forbidden(r) for f in self.forbiddens)]
            out.extend(rows)
            need = n - len(out)
            if need <= 0:
                return out[:n]
        raise self._too_many()

    def _batch_rows(self, rng: np.random.Generator, n: int) -> list[dict]:
        u = rng.random((self._n, n))
        cols: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray | None] = {}
        objs = []
        for i, (name, _, fn, parents, p) in enumerate(self._plan):
            col = p._draw_column(u[i])
            cols[name] = col
            mask = None
            if fn is not None:
                mask = np.ones(n, dtype=bool)
                for q in parents:
                    if masks[q] is not None:
                        mask &= masks[q]
                for vf in self._vconds[name]:
                    mask &= vf(cols)
            masks[name] = mask
            vals = p._column_values(col)
            if mask is not None:
                vals[~mask] = _INACTIVE
            objs.append(vals.tolist())
        names = self.names
        if not self._conds:
            return [dict(zip(names, row)) for row in zip(*objs)]
        inactive = _INACTIVE
        return [{k: v for k, v in zip(names, row) if v is not inactive} for row in zip(*objs)]

    # ---- validation --------------------------------------------------------------------------
    def _fast_valid(self, config: Mapping) -> bool:
        count = 0
        for n, fn, parents, contains in self._checks:
            if fn is not None:
                ok = True
                for q in parents:
                    if q not in config:
                        ok = False
                        break
                if not ok or not fn(config):
                    if n in config:
                        return False
                    continue
            if n not in config:
                return False
            if not contains(config[n]):
                return False
            count += 1
        if count != len(config):
            return False
        for f in self.forbiddens:
            if f.is_forbidden(config):
                return False
        return True

    def violations(self, config: Any) -> list[str]:
        """Every broken rule of ``config`` (empty list when valid)."""
        if not isinstance(config, Mapping):
            return [f"configuration must be a mapping, got {type(config).__name__}"]
        try:
            if self._fast_valid(config):
                return []
        except Exception:  # noqa: BLE001 - fall through to the detailed pass
            pass
        out: list[str] = []
        for k in config:
            if k not in self.params:
                close = _close_names(k, self.params)
                out.append(f"unknown parameter {k!r}" + (f" (did you mean {close}?)" if close else ""))
        act: dict = {}
        for n, _, fn, parents, p in self._plan:
            active = True
            if fn is not None:
                if any(q not in act for q in parents):
                    active = False
                else:
                    try:
                        active = bool(fn(act))
                    except (KeyError, TypeError, ValueError):
                        active = False
            if not active:
                if n in config:
                    conds = " and ".join(str(c) for c in self._conds[n])
                    out.append(f"inactive parameter {n!r} is present (active only when {conds})")
                continue
            if n not in config:
                out.append(f"active parameter {n!r} is missing")
                continue
            v = config[n]
            if not p.contains(v):
                out.append(f"value {v!r} of parameter {n!r} is outside its domain {_domain(p)}")
                continue
            act[n] = p.normalize(v)
        # ``act`` holds only valid active values, so clauses are safe to evaluate on it
        for f in self.forbiddens:
            try:
                if f.is_forbidden(act):
                    out.append(
                        f"forbidden combination '{f}' ("
                        + ", ".join(f"{k}={act[k]!r}" for k in f.names) + ")")
            except Exception as e:  # noqa: BLE001
                out.append(f"forbidden clause '{f}' could not be evaluated: {e}")
        return out

    def validate(self, config: Any) -> None:
        """Raise one SpaceError listing every violation (unknown/inactive/missing keys, values
        outside domains, forbidden combinations)."""
        v = self.violations(config)
        if v:
            raise SpaceError(v, source=f"space {self.name!r}" if self.name else None)

    def is_valid(self, config: Any) -> bool:
        if not isinstance(config, Mapping):
            return False
        try:
            return self._fast_valid(config)
        except Exception:  # noqa: BLE001
            return not self.violations(config)

    # ---- canonical forms ---------------------------------------------------------------------
    def default(self) -> dict:
        return dict(self._default)

    def canonical(self, config: Mapping[str, Any]) -> dict:
        """Active parameters only, in ``names`` order, python types (ints for Int params, the
        stored choice object for choice params). Unknown keys are dropped."""
        out: dict = {}
        for n, _, fn, parents, p in self._plan:
            if fn is not None:
                if any(q not in out for q in parents):
                    continue
                try:
                    if not fn(out):
                        continue
                except (KeyError, TypeError, ValueError):
                    continue
            if n not in config:
                continue
            v = config[n]
            try:
                out[n] = p.normalize(v)
            except (ValueError, TypeError):
                out[n] = _py(v)
        return out

    def config_id(self, config: Mapping[str, Any], used: Iterable[str] | None = None) -> str:
        """sha1 of the canonical JSON of the active values (only ``used`` keys when given).

        Stable across processes and Python versions; ignores inactive values.
        """
        c = self.canonical(config)
        if used is not None:
            used = set(used)
            c = {k: v for k, v in c.items() if k in used}
        blob = json.dumps(_jsonable(c), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()

    # ---- size ----------------------------------------------------------------------------------
    def size_upper_bound(self) -> int | float:
        """Product of every domain size (ignores conditions and forbiddens)."""
        total: int | float = 1
        for p in self.params.values():
            c = p.cardinality
            if c == math.inf:
                return math.inf
            total *= c
        return total

    def size(self) -> int | float:
        """Exact number of distinct valid configurations (``math.inf`` if any parameter is
        continuous). Counts recursively: independent components multiply, only parameters that
        gate conditions or appear in forbidden clauses are enumerated."""
        if any(not p.is_discrete for p in self.params.values()):
            return math.inf
        return _Counter(self).count(frozenset(self.params), {})

    def iter_configs(self) -> Iterator[dict]:
        """Every distinct valid configuration of a discrete space (depth-first, ``names`` order)."""
        bad = [n for n, p in self.params.items() if not p.is_discrete]
        if bad:
            raise SpaceError(f"iter_configs needs a discrete space; continuous parameters: {bad}")
        plan = self._plan
        forb = self.forbiddens
        last: dict[int, list] = {}
        for f in forb:
            idx = max(self.names.index(n) for n in f.names)
            last.setdefault(idx, []).append(f)

        def rec(i: int, cfg: dict) -> Iterator[dict]:
            if i == len(plan):
                yield dict(cfg)
                return
            n, _, fn, parents, p = plan[i]
            if fn is not None and (any(q not in cfg for q in parents) or not fn(cfg)):
                if any(f.is_forbidden(cfg) for f in last.get(i, ())):
                    return
                yield from rec(i + 1, cfg)
                return
            for v in p.values:
                cfg[n] = v
                if any(f.is_forbidden(cfg) for f in last.get(i, ())):
                    continue
                yield from rec(i + 1, cfg)
            del cfg[n]

        yield from rec(0, {})

    # ---- variation operators -------------------------------------------------------------------
    def _repair(self, cfg: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
        """Drop inactive keys, fill newly active ones (sampled, or default when rng is None)."""
        out: dict = {}
        for n, draw, fn, parents, p in self._plan:
            if fn is not None and (any(q not in out for q in parents) or not fn(out)):
                continue
            if n in cfg and p.contains(cfg[n]):
                out[n] = p.normalize(cfg[n])
            else:
                out[n] = draw(float(rng.random())) if rng is not None else p.default
        return out

    def _forbidden(self, cfg: Mapping) -> bool:
        return any(f.is_forbidden(cfg) for f in self.forbiddens)

    def _mutate_value(self, p: Param, v: Any, rng: np.random.Generator) -> Any:
        if isinstance(p, Constant) or p.cardinality == 1:
            return v
        if isinstance(p, Float) and p.step is None:
            if p.log:
                lo, hi, x = p._lo, p._hi, math.log(v)
            else:
                lo, hi, x = p.low, p.high, v
            y = min(max(x + rng.normal(0.0, 0.2 * (hi - lo)), lo), hi)
            return min(max(math.exp(y) if p.log else y, p.low), p.high)
        card = p.cardinality
        if isinstance(p, Int) and card > 50:
            span = max(1, int(0.2 * card))
            k = (v - p.low) // p.step + int(rng.integers(-span, span + 1))
            k = min(max(k, 0), card - 1)
            return p.low + k * p.step
        vals = p.values
        i = vals.index(p.normalize(v)) if not isinstance(p, _ChoiceMixin) else p.index(v)
        j = int(rng.integers(card - 1))
        return vals[j + 1 if j >= i else j]

    def mutate(self, config: Mapping[str, Any], prob: float = 0.2,
               rng: np.random.Generator | int | None = None) -> dict:
        """Change each active parameter with probability ``prob``; the result is valid."""
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob!r}")
        rng = _rng(rng)
        base = self.canonical(config)
        for _ in range(100):
            new = dict(base)
            for n in list(base):
                if rng.random() < prob:
                    new[n] = self._mutate_value(self.params[n], base[n], rng)
            new = self._repair(new, rng)
            if not self._forbidden(new):
                return new
        return self._repair(base, rng)

    def neighbours(self, config: Mapping[str, Any],
                   rng: np.random.Generator | int | None = None) -> list[dict]:
        """Configs differing in one active parameter (adjacent values for ordered params, every
        other value for categoricals); newly active params get defaults (or samples with rng)."""
        r = _rng(rng) if rng is not None else None
        base = self.canonical(config)
        out: list[dict] = []
        seen = {self.config_id(base)}
        for n, v in base.items():
            p = self.params[n]
            cands: list = []
            if isinstance(p, Categorical):
                cands = [c for c in p.values if _key(c) != _key(v)]
            elif isinstance(p, Ordinal):
                i = p.index(v)
                cands = [p.values[j] for j in (i - 1, i + 1) if 0 <= j < p.cardinality]
            elif isinstance(p, Int):
                cands = [x for x in (v - p.step, v + p.step) if p.contains(x)]
            elif isinstance(p, Float):
                if p.step is not None:
                    cands = [p._snap(x) for x in (v - p.step, v + p.step) if p.contains(x)]
                elif p.low < p.high:
                    if p.log:
                        d = 0.05 * (p._hi - p._lo)
                        cands = [min(max(math.exp(math.log(v) + s * d), p.low), p.high) for s in (-1, 1)]
                    else:
                        d = 0.05 * (p.high - p.low)
                        cands = [min(max(v + s * d, p.low), p.high) for s in (-1, 1)]
            for c in cands:
                new = dict(base)
                new[n] = c
                new = self._repair(new, r)
                if self._forbidden(new):
                    continue
                cid = self.config_id(new)
                if cid not in seen:
                    seen.add(cid)
                    out.append(new)
        return out

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any],
                  rng: np.random.Generator | int | None = None) -> dict:
        """Uniform crossover: each active parameter comes from ``a`` or ``b`` (sampled if neither
        has it active); the result is valid."""
        rng = _rng(rng)
        a, b = self.canonical(a), self.canonical(b)
        for _ in range(100):
            child: dict = {}
            for n, draw, fn, parents, p in self._plan:
                if fn is not None and (any(q not in child for q in parents) or not fn(child)):
                    continue
                opts = [x[n] for x in (a, b) if n in x and p.contains(x[n])]
                if not opts:
                    child[n] = draw(float(rng.random()))
                else:
                    child[n] = opts[int(rng.integers(len(opts)))]
            if not self._forbidden(child):
                return child
        return self._repair(a, rng)

    # ---- encoding ------------------------------------------------------------------------------
    @property
    def encoding_names(self) -> list[str]:
        names: list[str] = []
        for n in self.names:
            p = self.params[n]
            if isinstance(p, Constant):
                continue
            if isinstance(p, Categorical):
                names.extend(f"{n}={c}" for c in p.choices)
            else:
                names.append(n)
        return names

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Fixed-length float vector: ordinals by index, categoricals one-hot, numbers as values,
        inactive parameters NaN (constants are omitted)."""
        c = self.canonical(config)
        out: list[float] = []
        for n in self.names:
            p = self.params[n]
            if isinstance(p, Constant):
                continue
            if isinstance(p, Categorical):
                if n in c:
                    i = p.index(c[n])
                    out.extend(1.0 if j == i else 0.0 for j in range(p.cardinality))
                else:
                    out.extend([math.nan] * p.cardinality)
            elif n not in c:
                out.append(math.nan)
            elif isinstance(p, Ordinal):
                out.append(float(p.index(c[n])))
            else:
                out.append(float(c[n]))
        return np.asarray(out, dtype=float)

    # ---- derived spaces and serialisation ------------------------------------------------------
    def discrete_values(self, name: str) -> tuple:
        p = self[name]
        if not p.is_discrete:
            raise SpaceError(f"parameter {name!r} is continuous; it has no discrete values")
        return p.values

    def with_fixed(self, values: Mapping[str, Any]) -> "SearchSpace":
        """A copy where each named parameter becomes a Constant with the given (valid) value."""
        errs = []
        for k, v in values.items():
            if k not in self.params:
                errs.append(f"cannot fix unknown parameter {k!r}")
            elif not self.params[k].contains(v):
                errs.append(f"cannot fix {k!r} to {v!r}: outside its domain {_domain(self.params[k])}")
        if errs:
            raise SpaceError(errs)
        params = [Constant(n, p.normalize(values[n]), meta=p.meta) if n in values else p
                  for n, p in self.params.items()]
        return SearchSpace(params, self.conditions, self.forbiddens, name=self.name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "params": [p.to_dict() for p in self.params.values()],
            "conditions": [c.to_dict() for c in self.conditions],
            "forbiddens": [f.to_dict() for f in self.forbiddens],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "SearchSpace":
        if not isinstance(d, Mapping) or "params" not in d:
            raise SpaceError(f"space spec must be a mapping with a 'params' list, got {d!r}"[:300])
        params = [Param.from_dict(p) for p in d["params"]]
        conds = [Condition.from_dict(c) for c in d.get("conditions", ()) or ()]
        forbs = [Forbidden.from_dict(f) for f in d.get("forbiddens", ()) or ()]
        return cls(params, conds, forbs, name=d.get("name", "") or "")


def _domain(p: Param) -> str:
    if isinstance(p, (Categorical, Ordinal)):
        return f"{list(p.values)!r}"
    if isinstance(p, Constant):
        return f"{{{p.value!r}}}"
    s = f"[{p.low}, {p.high}]"  # type: ignore[attr-defined]
    if getattr(p, "step", None) not in (None, 1):
        s += f" step {p.step}"  # type: ignore[attr-defined]
    return s


def _close_names(k: str, names: Iterable[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(str(k), list(names), n=3)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


class _Counter:
    """Recursive exact counting of distinct valid configurations.

    State: ``S`` = unresolved params, ``fixed`` = enumerated active values. A param not in S and
    not in fixed is inactive. After resolving activity of params whose parents are all decided,
    S splits into independent components (condition edges + forbidden clauses); their counts
    multiply. A component that is a single unconstrained param contributes its cardinality;
    otherwise its first (topological) param is enumerated.
    """

    def __init__(self, space: SearchSpace):
        self.sp = space
        self.order = {n: i for i, n in enumerate(space.names)}
        self.cond = {n: fn for n, _, fn, _, _ in space._plan if fn is not None}
        self.parents = space._parents
        self.clauses = list(space.forbiddens)
        self.clause_of: dict[str, list[int]] = {}
        for i, f in enumerate(self.clauses):
            for n in f.names:
                self.clause_of.setdefault(n, []).append(i)
        self.memo: dict = {}

    def count(self, S: frozenset, fixed: dict) -> int:
        sp = self.sp
        # resolve activity in topological order
        S = set(S)
        for n in sorted(S, key=self.order.__getitem__):
            ps = self.parents.get(n)
            if not ps or any(q in S for q in ps):
                continue
            if any(q not in fixed for q in ps) or not self.cond[n](fixed):
                S.discard(n)
        if not S:
            return 1
        # live clauses: no involved name inactive, at least one unresolved
        live = []
        for i, f in enumerate(self.clauses):
            ns = f.names
            if any(x not in S and x not in fixed for x in ns):
                continue
            if any(x in S for x in ns):
                live.append(i)
        # union-find components
        parent = {n: n for n in S}

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        def union(a, b):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[ra] = rb

        for n in S:
            for q in self.parents.get(n, ()):
                if q in S:
                    union(n, q)
        in_clause = set()
        for i in live:
            ns = [x for x in self.clauses[i].names if x in S]
            in_clause.update(ns)
            for x in ns[1:]:
                union(ns[0], x)
        comps: dict[str, list[str]] = {}
        for n in S:
            comps.setdefault(find(n), []).append(n)
        total = 1
        for members in comps.values():
            if len(members) == 1 and members[0] not in in_clause:
                total *= sp.params[members[0]].cardinality
            else:
                total *= self._count_comp(frozenset(members), fixed)
            if total == 0:
                return 0
        return total

    def _count_comp(self, C: frozenset, fixed: dict) -> int:
        deps = set()
        for n in C:
            deps.update(q for q in self.parents.get(n, ()) if q not in C)
            for i in self.clause_of.get(n, ()):
                deps.update(x for x in self.clauses[i].names if x not in C)
        key = (C, tuple(sorted((d, _key(fixed[d])) if d in fixed else (d, _INACTIVE)
                               for d in deps)))
        try:
            hit = self.memo.get(key)
        except TypeError:
            hit, key = None, None
        if hit is not None:
            return hit
        # enumerate the first param in topological order (its parents are all decided)
        p_name = min(C, key=self.order.__getitem__)
        p = self.sp.params[p_name]
        rest = C - {p_name}
        clauses = [self.clauses[i] for i in self.clause_of.get(p_name, ())]
        total = 0
        fixed = dict(fixed)
        for v in p.values:
            fixed[p_name] = v
            bad = False
            for f in clauses:
                if all(x in fixed for x in f.names) and f._match(fixed):
                    bad = True
                    break
            if bad:
                continue
            total += self.count(rest, fixed)
        if key is not None:
            self.memo[key] = total
        return total


__all__ = [
    "Param", "Categorical", "Ordinal", "Int", "Float", "Constant",
    "Condition", "Equals", "NotEquals", "In", "GreaterThan", "LessThan", "And", "Or",
    "Forbidden", "ForbiddenEquals", "ForbiddenIn", "ForbiddenAnd", "ForbiddenRelation",
    "ForbiddenPredicate", "SearchSpace",
]
