"""Parameter types: the :class:`Param` base with ``Param.from_dict``, :class:`Categorical`,
:class:`Ordinal`, :class:`Int`, :class:`Float` and :class:`Constant`.

Parameters are frozen dataclasses validated in ``__post_init__``; every invalid argument raises
:class:`~spaces.errors.SpaceError` naming the parameter, the bad value and what is valid.
Imports only :mod:`spaces.values` and :mod:`spaces.errors`. Pure Python + numpy.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from spaces.errors import SpaceError
from spaces.values import (
    as_rng, check_name, choice_key, frozen, is_int, is_real, py_value, value_tuple,
)

__all__ = ["Param", "ChoiceParam", "Categorical", "Ordinal", "Int", "Float", "Constant",
           "PARAM_TYPES"]

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

    def _check_meta(self) -> None:
        if self.meta is not None and not isinstance(self.meta, dict):
            raise SpaceError(f"parameter {self.name!r}: meta must be a dict, got {self.meta!r}")

    @property
    def values(self) -> tuple:
        raise SpaceError(f"parameter {self.name!r} is continuous and has no finite value list")

    @property
    def cardinality(self) -> int | float:
        return len(self.values)

    def contains(self, v: Any) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def normalize(self, v: Any) -> Any:
        return py_value(v)

    def sample(self, rng: np.random.Generator | int | None = None) -> Any:
        return self._draw(float(as_rng(rng).random()))

    # u in [0, 1) -> value. Used by the precomputed sampling plan.
    def _draw(self, u: float) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    # vectorised: numeric column (indices for choice params, values for numbers)
    def _draw_column(self, u: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise NotImplementedError

    def _column_list(self, col: np.ndarray) -> list:
        """The Python values of a drawn column."""
        return col.tolist()

    def _column_of(self, v: Any) -> float:
        """Map a value to the numeric-column representation used in vector conditions."""
        return v

    def _column_member(self, values: Iterable[Any]) -> Callable[[np.ndarray], np.ndarray]:
        """``col -> bool array``: which drawn values are among ``values`` (values outside the
        domain never match)."""
        refs = [self._column_of(v) for v in values if self.contains(v)]
        if not refs:
            return lambda col: np.zeros(len(col), dtype=bool)
        if isinstance(self, (ChoiceParam, Constant)):
            table = np.zeros(self.cardinality, dtype=bool)
            table[refs] = True
            return lambda col: table[col]
        if len(refs) == 1:
            ref = refs[0]
            return lambda col: col == ref
        arr = np.asarray(refs)
        return lambda col: np.isin(col, arr)

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping) -> "Param":
        if not isinstance(d, Mapping):
            raise SpaceError(f"parameter spec must be a mapping, got {d!r}")
        kind = str(d.get("type", "")).lower()
        cls = PARAM_TYPES.get(kind)
        name = d.get("name", "?")
        if cls is None:
            raise SpaceError(
                f"parameter {name!r}: unknown type {d.get('type')!r}; "
                f"valid types: {', '.join(sorted(PARAM_TYPES))}"
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


class ChoiceParam(Param):
    """Shared by Categorical and Ordinal: a finite tuple of values stored as indices."""

    _choices: tuple

    def _init_choices(self, field_name: str, domain: str) -> tuple:
        """Check the name, store the checked values of ``field_name`` and their lookup tables,
        and settle the default (the first value when None is not itself a value); ``domain``
        names the values in the error about a default outside them. Returns the values."""
        check_name(self.name)
        choices = value_tuple(getattr(self, field_name), field_name, self.name)
        object.__setattr__(self, field_name, choices)
        object.__setattr__(self, "_choices", choices)
        object.__setattr__(self, "_lookup", {choice_key(v): i for i, v in enumerate(choices)})
        arr = np.empty(len(choices), dtype=object)
        for i, v in enumerate(choices):
            arr[i] = v
        object.__setattr__(self, "_obj", arr)
        if self.default is None and not self.contains(None):
            object.__setattr__(self, "default", choices[0])
        elif not self.contains(self.default):
            raise SpaceError(f"parameter {self.name!r}: default {self.default!r} is not {domain} "
                             f"{choices!r}")
        else:
            object.__setattr__(self, "default", self.normalize(self.default))
        return choices

    @property
    def values(self) -> tuple:
        return self._choices

    @property
    def cardinality(self) -> int:
        return len(self._choices)

    def index(self, v: Any) -> int:
        try:
            return self._lookup[choice_key(py_value(v) if isinstance(v, np.generic) else v)]
        except (KeyError, TypeError):
            raise SpaceError(f"{v!r} is not a value of parameter {self.name!r}") from None

    def contains(self, v: Any) -> bool:
        try:
            return choice_key(py_value(v) if isinstance(v, np.generic) else v) in self._lookup
        except TypeError:
            return False

    def normalize(self, v: Any) -> Any:
        return self._choices[self.index(v)]

    def _column_list(self, col: np.ndarray) -> list:
        return self._obj[col].tolist()

    def _column_of(self, v: Any) -> float:
        return self.index(v)


@dataclass(frozen=True)
class Categorical(ChoiceParam):
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
        choices = self._init_choices("choices", "one of the choices")
        if self.weights is not None:
            w = tuple(float(x) for x in self.weights)
            if len(w) != len(choices):
                raise SpaceError(
                    f"parameter {self.name!r}: {len(w)} weights for {len(choices)} choices"
                )
            if any(not math.isfinite(x) or x < 0 for x in w) or sum(w) <= 0:
                raise SpaceError(
                    f"parameter {self.name!r}: weights {w!r} must be finite, >= 0 and not all 0"
                )
            object.__setattr__(self, "weights", w)
            total = sum(w)
            cum = list(np.cumsum([x / total for x in w]))
            cum[-1] = 1.0
            object.__setattr__(self, "_cum", tuple(cum))
            object.__setattr__(self, "_cum_arr", np.asarray(cum))
        self._check_meta()

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
class Ordinal(ChoiceParam):
    """Ordered finite sequence; comparisons (GreaterThan/LessThan) use positions."""

    name: str
    sequence: tuple
    default: Any = None
    meta: dict | None = field(default=None, compare=False)
    type_name = "ordinal"
    orderable = True

    def __post_init__(self) -> None:
        self._init_choices("sequence", "in the sequence")
        self._check_meta()

    def _draw(self, u: float) -> Any:
        return self._choices[int(u * len(self._choices))]

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        return (u * len(self._choices)).astype(np.int64)

    def to_dict(self) -> dict:
        return self._meta_dict({"type": "ordinal", "name": self.name,
                                "sequence": list(self.sequence), "default": self.default})

    def __hash__(self) -> int:
        return hash(("ordinal", self.name, self.sequence))


def _range_dict(p: Any, kind: str, plain_step: Any) -> dict:
    """``to_dict`` of an Int or Float ``p``: ``log`` only when set, ``step`` only when it is not
    ``plain_step`` (the step of a plain range)."""
    d = {"type": kind, "name": p.name, "low": p.low, "high": p.high, "default": p.default}
    if p.log:
        d["log"] = True
    if p.step != plain_step:
        d["step"] = p.step
    return p._meta_dict(d)


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
        check_name(self.name)
        n = self.name
        for attr in ("low", "high", "step"):
            v = getattr(self, attr)
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            if not is_int(v):
                raise SpaceError(f"parameter {n!r}: {attr} must be an integer, got {v!r}")
            object.__setattr__(self, attr, int(v))
        if self.low > self.high:
            raise SpaceError(f"parameter {n!r}: low={self.low} must be <= high={self.high}")
        if self.step < 1:
            raise SpaceError(f"parameter {n!r}: step={self.step} must be >= 1")
        if self.log and self.low <= 0:
            raise SpaceError(f"parameter {n!r}: log=True needs low > 0, got low={self.low}")
        if self.log and self.step != 1:
            raise SpaceError(f"parameter {n!r}: log=True and step={self.step} cannot be combined")
        if (self.high - self.low) % self.step:
            raise SpaceError(
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
            raise SpaceError(
                f"parameter {n!r}: default {self.default!r} is outside [{self.low}, {self.high}]"
                + (f" with step {self.step}" if self.step != 1 else "")
            )
        else:
            object.__setattr__(self, "default", int(self.default))
        self._check_meta()
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
        if not is_int(v):
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
            return np.minimum(np.maximum(v, self.low, out=v), self.high, out=v)
        return self.low + self.step * (u * self._card).astype(np.int64)

    def to_dict(self) -> dict:
        return _range_dict(self, "int", plain_step=1)

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
        check_name(self.name)
        n = self.name
        for attr in ("low", "high"):
            v = getattr(self, attr)
            if not is_real(v) or not math.isfinite(v):
                raise SpaceError(f"parameter {n!r}: {attr} must be a finite number, got {v!r}")
            object.__setattr__(self, attr, float(v))
        if self.low > self.high:
            raise SpaceError(f"parameter {n!r}: low={self.low} must be <= high={self.high}")
        if self.log and self.low <= 0:
            raise SpaceError(f"parameter {n!r}: log=True needs low > 0, got low={self.low}")
        if self.step is not None:
            if not is_real(self.step) or not self.step > 0:
                raise SpaceError(f"parameter {n!r}: step must be a number > 0, got {self.step!r}")
            if self.log:
                raise SpaceError(f"parameter {n!r}: log=True and step={self.step} cannot be combined")
            object.__setattr__(self, "step", float(self.step))
            k = (self.high - self.low) / self.step
            if abs(k - round(k)) > 1e-8 * max(1.0, k):
                raise SpaceError(
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
            raise SpaceError(
                f"parameter {n!r}: default {self.default!r} is outside [{self.low}, {self.high}]"
                + (f" with step {self.step}" if self.step else "")
            )
        else:
            object.__setattr__(self, "default", self.normalize(self.default))
        self._check_meta()
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
        if not is_real(v):
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
            v = np.exp(self._lo + u * (self._hi - self._lo))
            return np.minimum(np.maximum(v, self.low, out=v), self.high, out=v)
        return self.low + u * (self.high - self.low)

    def to_dict(self) -> dict:
        return _range_dict(self, "float", plain_step=None)

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
        check_name(self.name)
        v = frozen(self.value)
        try:
            hash(v)
        except TypeError:
            raise SpaceError(f"parameter {self.name!r}: constant value {v!r} is not hashable") from None
        object.__setattr__(self, "value", v)
        self._check_meta()

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
            return choice_key(py_value(v)) == choice_key(self.value) or (
                isinstance(v, list) and tuple(v) == self.value)
        except TypeError:
            return False

    def normalize(self, v: Any) -> Any:
        return self.value

    def _draw(self, u: float) -> Any:
        return self.value

    def _draw_column(self, u: np.ndarray) -> np.ndarray:
        return np.zeros(len(u), dtype=np.int64)

    def _column_list(self, col: np.ndarray) -> list:
        return [self.value] * len(col)

    def _column_of(self, v: Any) -> float:
        return 0

    def to_dict(self) -> dict:
        return self._meta_dict({"type": "constant", "name": self.name, "value": self.value})

    def __hash__(self) -> int:
        return hash(("constant", self.name, self.value))


PARAM_TYPES: dict[str, type] = {
    "categorical": Categorical, "ordinal": Ordinal, "int": Int, "float": Float,
    "constant": Constant,
}
