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
    "check_name",
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


def choice_key(v: Any) -> Any:
    """Hash key that keeps booleans apart from ints (``True`` and ``1`` are different choices)."""
    if isinstance(v, (bool, np.bool_)):
        return ("__bool__", bool(v))
    return v


def value_tuple(values: Any, what: str, name: str) -> tuple:
    """``values`` as a non-empty tuple of distinct hashable Python values (lists become tuples).

    Raises:
        SpaceError: not a sequence, empty, an unhashable value, or duplicates (named).
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise SpaceError(f"parameter {name!r}: {what} must be a sequence, got {values!r}")
    out = tuple(tuple(v) if isinstance(v, list) else py_value(v) for v in values)
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
