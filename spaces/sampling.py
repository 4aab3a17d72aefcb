"""Random sampling of a :class:`~spaces.graph.SpaceGraph`: one configuration at a time, or a
vectorised batch.

Both draw every parameter in ``graph.names`` order from uniform numbers, keep the active ones
(:mod:`spaces.graph` semantics) and redraw configurations that match a forbidden clause.
A batch draws one column per parameter, computes activity masks column by column, rejects
forbidden rows on the columns (clauses over equality / membership; relations and predicates are
checked on the surviving rows), and only then builds the configuration dicts.
Imports only :mod:`spaces.graph`, :mod:`spaces.values` and :mod:`spaces.errors`.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from spaces.errors import SpaceError
from spaces.graph import SpaceGraph
from spaces.values import INACTIVE

__all__ = ["MAX_TRIES", "sample_one", "sample_batch", "BatchSampler"]

#: Draws (single) or rounds (batch) before a space whose forbidden clauses exclude (almost)
#: everything is reported.
MAX_TRIES = 1000


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
    """The column programme of one graph, compiled once (see the module docstring)."""

    def __init__(self, graph: SpaceGraph):
        self.graph = graph
        params = graph.params
        self.vconds: dict[str, list[Callable]] = {
            n: [c._vcompile(params) for c in graph.conditions_for(n)]
            for n in graph.names if graph.parents_of(n)}
        self.vforbidden = []
        self.row_forbidden = []
        for f in graph.forbiddens:
            vf = f._vcompile(params)
            if vf is None:
                self.row_forbidden.append(f)
            else:
                self.vforbidden.append(vf)

    def rows(self, rng: np.random.Generator, n: int) -> list[dict]:
        """Up to ``n`` valid configurations (fewer when some rows were forbidden)."""
        graph = self.graph
        u = rng.random((len(graph.steps), n))
        cols: dict[str, np.ndarray] = {}
        masks: dict[str, Any] = {}
        for i, (name, p, active) in enumerate(graph.steps):
            cols[name] = p._draw_column(u[i])
            mask = None
            if active is not None:
                for vf in self.vconds[name]:
                    m = vf(cols, masks)
                    mask = m if mask is None else mask & m
            masks[name] = mask
        keep = None
        if self.vforbidden:
            bad = self.vforbidden[0](cols, masks)
            for vf in self.vforbidden[1:]:
                bad = bad | vf(cols, masks)
            keep = np.flatnonzero(~bad)
        objs = []
        for name, p, _ in graph.steps:
            col, mask = cols[name], masks[name]
            if keep is not None:
                col = col[keep]
                mask = None if mask is None else mask[keep]
            vals = p._column_values(col)
            if mask is not None:
                vals[~mask] = INACTIVE
            objs.append(vals.tolist())
        names = graph.names
        if not self.vconds:
            out = [dict(zip(names, row)) for row in zip(*objs)]
        else:
            inactive = INACTIVE
            out = [{k: v for k, v in zip(names, row) if v is not inactive} for row in zip(*objs)]
        if self.row_forbidden:
            out = [r for r in out if not any(f.is_forbidden(r) for f in self.row_forbidden)]
        return out


def sample_batch(graph: SpaceGraph, sampler: BatchSampler, rng: np.random.Generator,
                 n: int) -> list[dict]:
    """``n`` valid configurations of ``graph``, drawn in vectorised rounds by ``sampler``."""
    if n == 0:
        return []
    out: list[dict] = []
    need = n
    for _ in range(MAX_TRIES):
        out.extend(sampler.rows(rng, need))
        need = n - len(out)
        if need <= 0:
            return out[:n]
    raise _too_many(graph)
