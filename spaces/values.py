"""Value helpers shared by every search-space module: random generators, numpy-to-Python
conversion, choice keys that keep ``True`` apart from ``1``, checked value tuples, and the
:data:`INACTIVE` marker.

The bottom of the ``spaces`` modules: imports only :mod:`spaces.errors` and numpy.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterable

import numpy as np

from spaces.errors import SpaceError

__all__ = [
    "INACTIVE", "as_rng", "py_value", "is_real", "is_int", "choice_key", "value_tuple",
    "check_name", "FrozenDict", "frozen",
]

#: Marks an inactive parameter in batch-sampled columns and in the exact counter's memo keys.
INACTIVE = object()


def as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself, or a new Generator seeded by the int (fresh entropy for ``None``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def py_value(v: Any) -> Any:
    """numpy scalars become Python scalars; tuples and lists are converted element-wise."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return type(v)(py_value(x) for x in v)
    return v


def is_real(v: Any) -> bool:
    """True for real numbers other than booleans."""
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def is_int(v: Any) -> bool:
    """True for integers other than booleans."""
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


class FrozenDict(dict):
    """A read-only dict that can be hashed: a choice whose value is a mapping (NNI's
    ``choice`` over dicts). Equal to the plain dict with the same items; mutating raises
    TypeError."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset((k, choice_key(v)) for k, v in self.items()))

    def _readonly(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a FrozenDict choice value cannot be changed")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = _readonly
    __ior__ = _readonly  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> "FrozenDict":
        return self

    def __deepcopy__(self, memo: dict) -> "FrozenDict":
        return self

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def frozen(v: Any) -> Any:
    """``v`` with lists turned into tuples and mappings into :class:`FrozenDict`, recursively
    (a value read from JSON made usable as a choice)."""
    if isinstance(v, (list, tuple)):
        return tuple(frozen(x) for x in v)
    if isinstance(v, dict) and not isinstance(v, FrozenDict):
        return FrozenDict((k, frozen(x)) for k, x in v.items())
    return py_value(v)


def choice_key(v: Any) -> Any:
    """Hash key that keeps booleans apart from ints (``True`` and ``1`` are different choices),
    also inside tuples; a list or dict (a tuple or mapping choice after a JSON round trip) has
    the key of its frozen form."""
    t = type(v)
    if t is bool or t is np.bool_:
        return ("__bool__", bool(v))
    if t is tuple or t is list:
        return ("__seq__",) + tuple(choice_key(x) for x in v)
    if t is dict:
        return frozen(v)
    return v


def value_tuple(values: Any, what: str, name: str) -> tuple:
    """``values`` as a non-empty tuple of distinct hashable Python values (lists become tuples).

    Raises:
        SpaceError: not a sequence, empty, an unhashable value, or duplicates (named).
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise SpaceError(f"parameter {name!r}: {what} must be a sequence, got {values!r}")
    out = tuple(frozen(v) for v in values)
    if not out:
        raise SpaceError(f"parameter {name!r}: {what} must not be empty")
    seen = set()
    dups = []
    for v in out:
        try:
            k = choice_key(v)
            if k in seen:
                dups.append(v)
            seen.add(k)
        except TypeError:
            raise SpaceError(f"parameter {name!r}: {what} value {v!r} is not hashable") from None
    if dups:
        raise SpaceError(f"parameter {name!r}: {what} contains duplicates {dups!r}")
    return out


def check_name(name: Any) -> None:
    """Raise SpaceError unless ``name`` is a non-empty string."""
    if not isinstance(name, str) or not name:
        raise SpaceError(f"parameter name must be a non-empty string, got {name!r}")
