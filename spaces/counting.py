"""Exact counting and enumeration of a discrete :class:`~spaces.space.SearchSpace`.

``size(space)`` counts the distinct valid configurations recursively with :class:`_Counter`
(independent components multiply; only parameters that gate conditions or appear in forbidden
clauses are enumerated); ``iter_configs(space)`` enumerates them depth-first. The
``SearchSpace.size`` / ``SearchSpace.iter_configs`` methods delegate here. Works on a
:class:`~spaces.graph.SpaceGraph` (activity as defined there, ORs included).
"""
from __future__ import annotations

import math
from typing import Iterator

from spaces.errors import SpaceError
from spaces.graph import SpaceGraph
from spaces.values import INACTIVE, choice_key

__all__ = ["size", "iter_configs"]


def size(space: SpaceGraph) -> int | float:
    """Exact number of distinct valid configurations (``math.inf`` if any parameter is
    continuous). Counts recursively: independent components multiply, only parameters that
    gate conditions or appear in forbidden clauses are enumerated."""
    if any(not p.is_discrete for p in space.params.values()):
        return math.inf
    return _Counter(space).count(frozenset(space.params), {})


def iter_configs(space: SpaceGraph) -> Iterator[dict]:
    """Every distinct valid configuration of a discrete space (depth-first, ``names`` order)."""
    bad = [n for n, p in space.params.items() if not p.is_discrete]
    if bad:
        raise SpaceError(f"iter_configs needs a discrete space; continuous parameters: {bad}")
    plan = space.steps
    forb = space.forbiddens
    last: dict[int, list] = {}
    for f in forb:
        idx = max(space.names.index(n) for n in f.names)
        last.setdefault(idx, []).append(f)

    def rec(i: int, cfg: dict) -> Iterator[dict]:
        if i == len(plan):
            yield dict(cfg)
            return
        n, p, active = plan[i]
        if active is not None and not active(cfg):
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


class _Counter:
    """Recursive exact counting of distinct valid configurations.

    State: ``S`` = unresolved params, ``fixed`` = enumerated active values. A param not in S and
    not in fixed is inactive. After resolving activity of params whose parents are all decided,
    S splits into independent components (condition edges + forbidden clauses); their counts
    multiply. A component that is a single unconstrained param contributes its cardinality;
    otherwise its first (topological) param is enumerated.
    """

    def __init__(self, space: SpaceGraph):
        self.sp = space
        self.order = {n: i for i, n in enumerate(space.names)}
        self.cond = {n: fn for n, _, fn in space.steps if fn is not None}
        self.parents = {n: space.parents_of(n) for n in space.names}
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
            if not self.cond[n](fixed):
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
        key = (C, tuple(sorted((d, choice_key(fixed[d])) if d in fixed else (d, INACTIVE)
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
