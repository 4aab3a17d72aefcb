"""Random sampling of a :class:`~spaces.graph.SpaceGraph`: one configuration at a time, or a
vectorised batch.

Both draw every parameter in ``graph.names`` order from uniform numbers, keep the active ones
(:mod:`spaces.graph` semantics) and redraw configurations that match a forbidden clause.
A batch draws one column per parameter, computes activity masks column by column, rejects
forbidden rows on the columns (clauses over equality / membership; relations and predicates are
checked on the surviving rows), and only then builds the configuration dicts.
Imports only :mod:`spaces.graph`, :mod:`spaces.vector`, :mod:`spaces.values` and :mod:`spaces.errors`.
"""
from __future__ import annotations

from collections import deque
from itertools import repeat
from typing import Any, Callable

import numpy as np

from spaces.errors import SpaceError
from spaces.graph import SpaceGraph
from spaces.vector import all_of

__all__ = ["MAX_TRIES", "sample_one", "sample_batch", "BatchSampler"]

#: Draws (single) or rounds (batch) before a space whose forbidden clauses exclude (almost)
#: everything is reported.
MAX_TRIES = 1000
#: Most rows drawn in one batch round (bounds memory).
MAX_ROWS = 200_000


def _too_many(graph: SpaceGraph) -> SpaceError:
    return SpaceError(
        f"space {graph.name!r}: no valid configuration found in {MAX_TRIES} tries; the forbidden "
        f"clauses {[str(f) for f in graph.forbiddens]} exclude (almost) everything")


def sample_one(graph: SpaceGraph, rng: np.random.Generator) -> dict:
    """One valid configuration of ``graph``."""
    steps = graph.steps
    forb = graph.forbiddens
    k = len(steps)
    for _ in range(MAX_TRIES):
        us = rng.random(k).tolist()
        cfg: dict = {}
        for (n, p, active), u in zip(steps, us):
            if active is None or active(cfg):
                cfg[n] = p._draw(u)
        if not forb or not any(f.is_forbidden(cfg) for f in forb):
            return cfg
    raise _too_many(graph)


class BatchSampler:
    """The column programme of one graph, compiled once (see the module docstring).

    Only *structural* parameters (parents of a condition, or named by a vectorised forbidden
    clause) are drawn for every row; a leaf parameter is drawn only for the rows that keep it
    (active and not forbidden). Parameters whose conditions test the same thing (the
    hyperparameters of one component, all active iff ``choice == 'x'``) share one activity
    mask. Rounds are sized from the fraction of rows the forbidden clauses let through,
    estimated once per space from a fixed-seed pilot round (so ``sample(seed, n)`` does not
    depend on earlier calls).
    """

    PILOT = 512

    def __init__(self, graph: SpaceGraph):
        self.graph = graph
        params = graph.params
        self.vforbidden = []
        self.row_forbidden = []
        structural: set[str] = set()
        for f in graph.forbiddens:
            vf = f._vcompile(params)
            if vf is None:
                self.row_forbidden.append(f)
            else:
                self.vforbidden.append(vf)
                structural.update(f.names)
        for name in graph.names:
            structural.update(graph.parents_of(name))
        group_of: dict = {}
        self.groups: list[Callable] = []
        #: (name, param, activity group or None, structural?) in ``names`` order
        self.steps: list[tuple[str, Any, int | None, bool]] = []
        for name, p, active in graph.steps:
            gid = None
            if active is not None:
                conds = graph.conditions_for(name)
                key = _group_key(conds)
                gid = group_of.get(key) if key is not None else None
                if gid is None:
                    gid = len(self.groups)
                    self.groups.append(all_of([c._vcompile(params) for c in conds]))
                    if key is not None:
                        group_of[key] = gid
            self.steps.append((name, p, gid, name in structural))
        self.structural = [(name, p, gid) for name, p, gid, st in self.steps if st]
        self._accept: float | None = None

    def columns(self, rng: np.random.Generator, n: int) -> tuple[dict, dict, list, Any]:
        """``n`` rows of the structural parameters as columns: values by name (choice
        indices for choice parameters), activity masks by name (None: always active), one
        mask per activity group (None: not computed yet), and the indices of the rows no
        vectorised forbidden clause rejects (None: all rows)."""
        u = rng.random((len(self.structural), n))
        cols: dict[str, np.ndarray] = {}
        masks: dict[str, Any] = {}
        gmasks: list = [None] * len(self.groups)
        for i, (name, p, gid) in enumerate(self.structural):
            cols[name] = p._draw_column(u[i])
            if gid is None:
                masks[name] = None
                continue
            m = gmasks[gid]
            if m is None:
                m = gmasks[gid] = self.groups[gid](cols, masks)
            masks[name] = m
        keep = None
        if self.vforbidden:
            bad = self.vforbidden[0](cols, masks)
            for vf in self.vforbidden[1:]:
                bad = bad | vf(cols, masks)
            keep = np.flatnonzero(~bad)
        return cols, masks, gmasks, keep

    def rows(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Up to ``n`` valid configurations (fewer when some rows were forbidden)."""
        cols, masks, gmasks, keep = self.columns(rng, n)
        m = n if keep is None else len(keep)
        if not self.groups:
            lists = []
            for name, p, _, st in self.steps:
                col = (cols[name] if keep is None else cols[name][keep]) if st else \
                    p._draw_column(rng.random(m))
                lists.append(p._column_list(col))
            out = [dict(zip(self.graph.names, row)) for row in zip(*lists)]
        else:
            out = self._fill(rng, cols, masks, gmasks, keep, m)
        if self.row_forbidden:
            out = [r for r in out if not any(f.is_forbidden(r) for f in self.row_forbidden)]
        return out

    def _fill(self, rng: np.random.Generator, cols: dict, masks: dict, gmasks: list,
              keep: np.ndarray | None, m: int) -> list[dict]:
        """The ``m`` kept rows as configuration dicts: each parameter's value goes to the rows
        where it is active (leaf parameters drawn now, for those rows only), keys in ``names``
        order."""
        out: list[dict] = [{} for _ in range(m)]
        everyone = (list(range(m)), keep if keep is not None else slice(None))
        where: list = [None] * len(self.groups)
        for gid in {gid for _, _, gid, _ in self.steps if gid is not None}:
            g = gmasks[gid]
            if g is None:
                g = self.groups[gid](cols, masks)
            pos = np.flatnonzero(g if keep is None else g[keep])
            where[gid] = (pos.tolist(), pos if keep is None else keep[pos])
        sizes = [len(where[gid][0]) if gid is not None else m
                 for _, _, gid, st in self.steps if not st]
        u = rng.random(sum(sizes))
        start = 0
        for name, p, gid, st in self.steps:
            rows, index = everyone if gid is None else where[gid]
            if st:
                values = p._column_list(cols[name][index])
            else:
                k = len(rows)
                values = p._column_list(p._draw_column(u[start:start + k]))
                start += k
            dicts = out if gid is None else map(out.__getitem__, rows)
            deque(map(dict.__setitem__, dicts, repeat(name), values), maxlen=0)
        return out

    def accept_rate(self) -> float:
        """The fraction of drawn rows that survive the forbidden clauses (pilot estimate)."""
        if self._accept is None:
            if not self.vforbidden and not self.row_forbidden:
                self._accept = 1.0
            else:
                kept = len(self.rows(np.random.default_rng(0), self.PILOT))
                self._accept = max(kept, 1) / self.PILOT
        return self._accept


def _group_key(conds: list) -> Any:
    try:
        key = tuple(c._vkey() for c in conds)
        hash(key)
        return key
    except TypeError:
        return None


def sample_batch(graph: SpaceGraph, sampler: BatchSampler, rng: np.random.Generator,
                 n: int) -> list[dict]:
    """``n`` valid configurations of ``graph``, drawn in vectorised rounds by ``sampler``; each
    round draws enough rows for the expected rejection rate, so one round usually suffices.
    SpaceError once ``MAX_TRIES * n`` rows were drawn without finding ``n`` valid ones."""
    if n == 0:
        return []
    out: list[dict] = []
    accept = sampler.accept_rate()
    budget = MAX_TRIES * n
    while budget > 0:
        need = n - len(out)
        draw = need if accept >= 1.0 else int(need / accept * 1.1) + 8
        draw = min(draw, budget, MAX_ROWS)
        budget -= draw
        out.extend(sampler.rows(rng, draw))
        if len(out) >= n:
            return out[:n]
    raise _too_many(graph)
