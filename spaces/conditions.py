"""Conditions: when a parameter is active. Simple conditions on one parent (:class:`Equals`,
:class:`NotEquals`, :class:`In`, :class:`GreaterThan`, :class:`LessThan`), their conjunction /
disjunction (:class:`And`, :class:`Or`) and ``Condition.from_dict``.

Each condition can check itself against a space's parameters and compile itself to a fast
per-config predicate (``_compile``) and a vectorised column predicate (``_vcompile``) used by
:class:`~spaces.space.SearchSpace`. Depends only on :mod:`spaces.params`, :mod:`spaces.values` and
:mod:`spaces.vector`. Pure Python + numpy.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from spaces.errors import SpaceError
from spaces.params import Constant, Ordinal, Param
from spaces.values import choice_key, py_value
from spaces.vector import VectorFn, all_of, and_mask, any_of, member

__all__ = ["Condition", "Equals", "NotEquals", "In", "GreaterThan", "LessThan", "And", "Or",
           "CONDITION_TYPES"]


class Condition:
    """When ``child`` is active (ConfigSpace semantics, see :mod:`spaces.graph`).

    ``evaluate(config)`` on a config holding the active parameters: a simple condition is false
    when its parent is absent (inactive); :class:`And` needs every part, :class:`Or` any part.
    """

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
        cls = CONDITION_TYPES.get(kind)
        if cls is None:
            raise SpaceError(
                f"condition {d!r}: unknown type {kind!r}; valid types: "
                f"{', '.join(sorted([*CONDITION_TYPES, 'and', 'or']))}"
            )
        try:
            if cls is In:
                return In(d["child"], d["parent"], tuple(d["values"]))
            return cls(d["child"], d["parent"], d["value"])
        except KeyError as exc:
            raise SpaceError(f"condition {d!r}: missing field {exc.args[0]!r} "
                             f"(a {kind} condition needs child, parent and "
                             f"{'values' if cls is In else 'value'})") from None

    # space-level checks and compilation; ``params`` is the space's param dict
    def _check(self, params: Mapping[str, Param]) -> list[str]:
        raise NotImplementedError

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        raise NotImplementedError

    def _vcompile(self, params: Mapping[str, Param]) -> VectorFn:
        raise NotImplementedError

    def _vkey(self) -> Any:
        """A hashable key equal for conditions that hold on the same configurations whatever
        their child (used to share activity masks between siblings)."""
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
        object.__setattr__(self, "value", py_value(self.value))

    @property
    def parents(self) -> set[str]:
        return {self.parent}

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return self.parent in config and bool(self._op(config[self.parent], self.value))

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

    def _vkey(self) -> Any:
        return (self._kind, self.parent, choice_key(self.value))

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        p = params[self.parent]
        name, op = self.parent, self._op
        if isinstance(p, Ordinal) and self._orderable:
            ref = p.index(self.value)
            key = p._lookup
            return lambda c: name in c and op(key[choice_key(c[name])], ref)
        val = self.value
        return lambda c: name in c and op(c[name], val)

    def _vcompile(self, params: Mapping[str, Param]) -> VectorFn:
        p = params[self.parent]
        name, op = self.parent, self._op
        if self._kind in ("equals", "not_equals"):
            return member(p, name, (self.value,), negate=self._kind == "not_equals")
        if not p.contains(self.value):
            return lambda cols, masks: np.zeros(len(cols[name]), dtype=bool)
        ref = p._column_of(self.value)
        return lambda cols, masks: and_mask(op(cols[name], ref), masks[name])


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
            raise SpaceError(f"In({self.child!r}, {self.parent!r}): values must be a sequence")
        vals = tuple(py_value(v) for v in self.values)
        if not vals:
            raise SpaceError(f"In({self.child!r}, {self.parent!r}): values must not be empty")
        object.__setattr__(self, "values", vals)

    @property
    def parents(self) -> set[str]:
        return {self.parent}

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return self.parent in config and config[self.parent] in self.values

    def __str__(self) -> str:
        return f"{self.child} | {self.parent} in {list(self.values)!r}"

    def to_dict(self) -> dict:
        return {"type": "in", "child": self.child, "parent": self.parent, "values": list(self.values)}

    _check = _Simple._check
    _orderable = False

    def _values(self) -> tuple:
        return self.values

    def _vkey(self) -> Any:
        return ("in", self.parent, tuple(choice_key(v) for v in self.values))

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        name = self.parent
        keys = frozenset(choice_key(v) for v in self.values)
        return lambda c: name in c and choice_key(c[name]) in keys

    def _vcompile(self, params: Mapping[str, Param]) -> VectorFn:
        return member(params[self.parent], self.parent, self.values)


@dataclass(frozen=True, init=False)
class _Conj(Condition):
    """Shared by And and Or: ``_reduce`` (all / any) folds the parts' truth values,
    ``_vreduce`` (:func:`~spaces.vector.all_of` / ``any_of``) their vector predicates."""

    conditions: tuple

    def __init__(self, *conditions: Condition):
        if len(conditions) == 1 and isinstance(conditions[0], (list, tuple)):
            conditions = tuple(conditions[0])
        if len(conditions) < 2:
            raise SpaceError(f"{type(self).__name__} needs at least two conditions, got {len(conditions)}")
        for c in conditions:
            if not isinstance(c, Condition):
                raise SpaceError(f"{type(self).__name__}: {c!r} is not a condition")
        children = {c.child for c in conditions}
        if len(children) != 1:
            raise SpaceError(
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
        return [e for c in self.conditions for e in c._check(params)]

    def _vkey(self) -> Any:
        return (self._kind, tuple(c._vkey() for c in self.conditions))

    def __str__(self) -> str:
        sep = " && " if self._kind == "and" else " || "
        return "(" + sep.join(str(c) for c in self.conditions) + ")"

    def evaluate(self, config: Mapping[str, Any]) -> bool:
        return self._reduce(c.evaluate(config) for c in self.conditions)

    def _compile(self, params: Mapping[str, Param]) -> Callable[[Mapping], bool]:
        fs = [c._compile(params) for c in self.conditions]
        reduce = self._reduce
        return lambda cfg: reduce(f(cfg) for f in fs)

    def _vcompile(self, params: Mapping[str, Param]) -> VectorFn:
        return self._vreduce([c._vcompile(params) for c in self.conditions])


class And(_Conj):
    """All sub-conditions hold."""
    _kind = "and"
    _reduce = staticmethod(all)
    _vreduce = staticmethod(all_of)


class Or(_Conj):
    """At least one sub-condition holds."""
    _kind = "or"
    _reduce = staticmethod(any)
    _vreduce = staticmethod(any_of)


CONDITION_TYPES: dict[str, type] = {
    "equals": Equals, "not_equals": NotEquals, "in": In, "greater_than": GreaterThan,
    "less_than": LessThan,
}
