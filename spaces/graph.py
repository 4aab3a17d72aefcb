"""The condition graph of a search space: parameters, conditions and forbidden clauses checked
once, arranged in dependency order, with one compiled activity test per conditional parameter.

:class:`SpaceGraph` is the part of :class:`~spaces.space.SearchSpace` that sampling, validation,
counting (:mod:`spaces.counting`), the variation operators (:mod:`spaces.variation`) and the
compilers (:mod:`spaces.compile`) all share: which parameters are active in a configuration,
the default configuration, canonical forms and configuration ids.

Activity follows ConfigSpace 1.x: a simple condition on an inactive parent is false; a parameter
whose condition is simple or an :class:`~spaces.conditions.And` is active iff its condition holds
(so every parent is active); an :class:`~spaces.conditions.Or` is active iff ANY disjunct holds,
a disjunct over an inactive parent being false. Several conditions on one child must all hold.

Imports only :mod:`spaces.params`, :mod:`spaces.conditions`, :mod:`spaces.forbidden`,
:mod:`spaces.values` and :mod:`spaces.errors`. Pure Python + numpy.
"""
from __future__ import annotations

import difflib
import hashlib
import heapq
import json
import math
from typing import Any, Callable, Iterable, Iterator, Mapping, NamedTuple

import numpy as np

from spaces.conditions import Condition
from spaces.errors import SpaceError, SpaceKeyError
from spaces.forbidden import Forbidden
from spaces.params import Categorical, ChoiceParam, Constant, Ordinal, Param
from spaces.values import choice_key, py_value

__all__ = ["SpaceGraph", "Step", "ActivityFn", "domain_text", "close_names", "jsonable",
           "fast_contains"]

ActivityFn = Callable[[Mapping[str, Any]], bool]


class Step(NamedTuple):
    """One parameter in dependency order: ``active`` is None for an unconditional parameter,
    else a test on the values of the parameters active so far (an absent parent is inactive)."""

    name: str
    param: Param
    active: ActivityFn | None


class SpaceGraph:
    """Checked parameters, conditions and forbidden clauses in sorted topological order.

    Raises:
        SpaceError: naming every broken rule (duplicate names, unknown parents or children,
            illegal condition values, unknown names in forbidden clauses, cyclic conditions,
            a default configuration that violates a forbidden clause).
    """

    def __init__(self, params: Iterable[Param] | Mapping[str, Param],
                 conditions: Iterable[Condition] = (), forbiddens: Iterable[Forbidden] = (),
                 name: str = ""):
        if isinstance(params, Mapping):
            params = list(params.values())
        self.name = name
        self.params: dict[str, Param] = {}
        self.conditions: tuple[Condition, ...] = tuple(conditions)
        self.forbiddens: tuple[Forbidden, ...] = tuple(forbiddens)
        self._check_parts(params)
        self._conds: dict[str, list[Condition]] = {}
        for c in self.conditions:
            self._conds.setdefault(c.child, []).append(c)
        self._parents: dict[str, tuple[str, ...]] = {
            n: tuple(sorted(set().union(*(c.parents for c in cs)))) for n, cs in self._conds.items()
        }
        self.names: list[str] = self._toposort()
        self.steps: tuple[Step, ...] = tuple(
            Step(n, self.params[n], self._activity(n)) for n in self.names)
        self._default = self._make_default()
        bad = [f for f in self.forbiddens if f.is_forbidden(self._default)]
        if bad:
            raise SpaceError(
                [f"default configuration violates forbidden clause '{f}' "
                 f"(values: {', '.join(f'{n}={self._default[n]!r}' for n in f.names)})" for f in bad],
                source=self._source())

    # ---- construction ------------------------------------------------------------------------
    def _source(self) -> str | None:
        return f"space {self.name!r}" if self.name else None

    def _check_parts(self, params: Iterable[Param]) -> None:
        errs: list[str] = []
        for p in params:
            if not isinstance(p, Param):
                raise SpaceError(f"space {self.name!r}: {p!r} is not a parameter")
            if p.name in self.params:
                errs.append(f"parameter {p.name!r} is defined twice")
            self.params[p.name] = p
        for c in self.conditions:
            if isinstance(c, Condition):
                errs.extend(c._check(self.params))
            else:
                errs.append(f"{c!r} is not a condition")
        for f in self.forbiddens:
            if isinstance(f, Forbidden):
                errs.extend(f._check(self.params))
            else:
                errs.append(f"{f!r} is not a forbidden clause")
        if errs:
            raise SpaceError(errs, source=self._source())

    def _toposort(self) -> list[str]:
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
                "condition itself", source=self._source())
        self._children = children
        return order

    def _activity(self, name: str) -> ActivityFn | None:
        conds = self._conds.get(name)
        if not conds:
            return None
        fs = [c._compile(self.params) for c in conds]
        return fs[0] if len(fs) == 1 else (lambda cfg, fs=fs: all(f(cfg) for f in fs))

    def _make_default(self) -> dict:
        cfg: dict = {}
        for n, p, active in self.steps:
            if active is None or active(cfg):
                cfg[n] = p.default
        return cfg

    # ---- mapping-like ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            close = close_names(name, self.params)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise SpaceKeyError(f"{name!r} is not a parameter of space {self.name!r}{hint}"
                                ) from None

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    # ---- activity ----------------------------------------------------------------------------
    def conditions_for(self, name: str) -> list[Condition]:
        """The conditions whose child is ``name`` (all must hold)."""
        self[name]
        return list(self._conds.get(name, ()))

    def children_of(self, name: str) -> list[str]:
        """Parameters with a condition on ``name``, sorted."""
        return sorted(self._children.get(name, ()))

    def parents_of(self, name: str) -> tuple[str, ...]:
        """Parameters named by the conditions of ``name``, sorted."""
        self[name]
        return self._parents.get(name, ())

    def activity_fn(self, name: str) -> ActivityFn | None:
        """``config -> bool``: is ``name`` active, given the values of the parameters active so
        far (an absent parent is inactive; see the module docstring)? None when unconditional."""
        self[name]
        return self.steps[self.names.index(name)].active

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """True iff ``name`` is active under ``config``'s values for its ancestors."""
        self[name]
        return name in self.active_names(config)

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        """Names (in topological order) active under ``config``'s values for their parents; an
        active parent missing from ``config`` takes its default."""
        out: list[str] = []
        act: dict = {}
        for n, p, active in self.steps:
            if active is not None and not _holds(active, act):
                continue
            out.append(n)
            act[n] = config.get(n, p.default) if isinstance(config, Mapping) else None
        return out

    def is_forbidden(self, config: Mapping[str, Any]) -> bool:
        """True iff ``config`` matches any forbidden clause."""
        return any(f.is_forbidden(config) for f in self.forbiddens)

    # ---- canonical forms ---------------------------------------------------------------------
    def default(self) -> dict:
        """The default configuration (each active parameter at its default)."""
        return dict(self._default)

    def canonical(self, config: Mapping[str, Any]) -> dict:
        """Active parameters only, in ``names`` order, python types (ints for Int params, the
        stored choice object for choice params). Unknown keys are dropped."""
        out: dict = {}
        for n, p, active in self.steps:
            if active is not None and not _holds(active, out):
                continue
            if n not in config:
                continue
            v = config[n]
            try:
                out[n] = p.normalize(v)
            except (ValueError, TypeError):
                out[n] = py_value(v)
        return out

    def config_id(self, config: Mapping[str, Any], used: Iterable[str] | None = None) -> str:
        """sha1 of the canonical JSON of the active values (only ``used`` keys when given).

        Stable across processes and Python versions; ignores inactive values.
        """
        c = self.canonical(config)
        if used is not None:
            used = set(used)
            c = {k: v for k, v in c.items() if k in used}
        blob = json.dumps(jsonable(c), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()

    def repair(self, config: Mapping[str, Any], rng: np.random.Generator | None = None) -> dict:
        """Drop inactive keys and keep valid active values; fill the rest (sampled with ``rng``,
        else the default). Forbidden clauses are not checked."""
        out: dict = {}
        for n, p, active in self.steps:
            if active is not None and not active(out):
                continue
            if n in config and p.contains(config[n]):
                out[n] = p.normalize(config[n])
            else:
                out[n] = p._draw(float(rng.random())) if rng is not None else p.default
        return out


def _holds(active: ActivityFn, config: Mapping[str, Any]) -> bool:
    try:
        return bool(active(config))
    except (KeyError, TypeError, ValueError):
        return False


def domain_text(p: Param) -> str:
    """A parameter's domain as shown in error messages."""
    if isinstance(p, (Categorical, Ordinal)):
        return f"{list(p.values)!r}"
    if isinstance(p, Constant):
        return f"{{{p.value!r}}}"
    s = f"[{p.low}, {p.high}]"  # type: ignore[attr-defined]
    if getattr(p, "step", None) not in (None, 1):
        s += f" step {p.step}"  # type: ignore[attr-defined]
    return s


def close_names(k: Any, names: Iterable[str]) -> list[str]:
    """Up to three of ``names`` closest to ``k``."""
    return difflib.get_close_matches(str(k), list(names), n=3)


def jsonable(v: Any) -> Any:
    """``v`` with tuples as lists, numpy scalars as Python scalars and other objects as repr."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)


def fast_contains(p: Param) -> Callable[[Any], bool]:
    """A membership test for ``p``, faster than ``p.contains`` for choice parameters."""
    if not isinstance(p, ChoiceParam):
        return p.contains
    lookup = p._lookup

    def contains(v: Any) -> bool:
        try:
            return choice_key(v) in lookup
        except TypeError:
            return False
    return contains
