"""Forbidden clauses: value combinations no valid configuration may contain
(:class:`ForbiddenEquals`, :class:`ForbiddenIn`, :class:`ForbiddenAnd`, :class:`ForbiddenRelation`,
:class:`ForbiddenPredicate`) and ``Forbidden.from_dict``.

A clause only applies when every parameter it names is active. Depends only on
:mod:`spaces.params`, :mod:`spaces.values` and :mod:`spaces.vector`. Pure Python + numpy.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from spaces.errors import SpaceError
from spaces.params import Constant, Float, Int, Param
from spaces.values import choice_key, py_value
from spaces.vector import VectorFn, all_of, and_mask, member

__all__ = ["Forbidden", "ForbiddenEquals", "ForbiddenIn", "ForbiddenAnd", "ForbiddenRelation",
           "ForbiddenPredicate", "RELATION_OPS"]


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

    def _vcompile(self, params: Mapping[str, Param]) -> VectorFn | None:
        """``(columns, masks) -> bool array`` of the rows this clause forbids (see
        :data:`spaces.vector.VectorFn`), or None when it can only be checked row by row."""
        return None

    def to_dict(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def from_dict(d: Mapping) -> "Forbidden":
        kind = str(d.get("type", "")).lower() if isinstance(d, Mapping) else ""
        try:
            return Forbidden._from_kind(kind, d)
        except KeyError as exc:
            raise SpaceError(f"forbidden clause {d!r}: missing field {exc.args[0]!r}") from None

    @staticmethod
    def _from_kind(kind: str, d: Mapping) -> "Forbidden":
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
        object.__setattr__(self, "value", py_value(self.value))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def _match(self, config):
        return choice_key(config[self.name]) == choice_key(self.value)

    def _check(self, params):
        return _check_values(self, self.name, (self.value,), params)

    def _vcompile(self, params):
        return member(params[self.name], self.name, (self.value,))

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
        object.__setattr__(self, "values", tuple(py_value(v) for v in self.values))
        object.__setattr__(self, "_keys", frozenset(choice_key(v) for v in self.values))

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def _match(self, config):
        return choice_key(config[self.name]) in self._keys

    def _check(self, params):
        return _check_values(self, self.name, self.values, params)

    def _vcompile(self, params):
        return member(params[self.name], self.name, self.values)

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
            raise SpaceError(f"ForbiddenAnd needs one or more forbidden clauses, got {clauses!r}")
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
        return [e for c in self.clauses for e in c._check(params)]

    def _vcompile(self, params):
        fs = [c._vcompile(params) for c in self.clauses]
        return None if any(f is None for f in fs) else all_of(fs)

    def __str__(self) -> str:
        return " && ".join(f"({c})" for c in self.clauses)

    def to_dict(self) -> dict:
        return {"type": "and", "clauses": [c.to_dict() for c in self.clauses]}


RELATION_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, ">": operator.gt,
            "<=": operator.le, ">=": operator.ge}


@dataclass(frozen=True)
class ForbiddenRelation(Forbidden):
    """Forbid ``config[left] <op> config[right]``, op in ``== != < > <= >=``."""

    left: str
    op: str
    right: str

    def __post_init__(self) -> None:
        if self.op not in RELATION_OPS:
            raise SpaceError(f"ForbiddenRelation: op {self.op!r} must be one of {sorted(RELATION_OPS)}")
        if self.left == self.right:
            raise SpaceError(f"ForbiddenRelation: left and right are both {self.left!r}")

    @property
    def names(self) -> tuple[str, ...]:
        return (self.left, self.right)

    def _match(self, config):
        try:
            return bool(RELATION_OPS[self.op](config[self.left], config[self.right]))
        except TypeError:
            return False

    def _vcompile(self, params):
        kinds = (Int, Float)
        if not (isinstance(params[self.left], kinds) and isinstance(params[self.right], kinds)):
            return None
        op, left, right = RELATION_OPS[self.op], self.left, self.right

        return lambda cols, masks: and_mask(and_mask(op(cols[left], cols[right]), masks[left]),
                                            masks[right])

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
            raise SpaceError("ForbiddenPredicate needs one or more names and a callable fn")
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
