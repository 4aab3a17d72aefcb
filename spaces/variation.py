"""Variation operators on a :class:`~spaces.space.SearchSpace`: ``mutate``, ``neighbours`` and
``crossover``, built on ``mutate_value`` (perturb one parameter value) and
:meth:`~spaces.graph.SpaceGraph.repair` (make a config consistent with the conditions).

Every operator returns a valid configuration; the ``SearchSpace`` methods of the same names
delegate here. Works on a :class:`~spaces.graph.SpaceGraph`. Pure Python + numpy.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from spaces.errors import SpaceError
from spaces.graph import SpaceGraph
from spaces.params import Categorical, ChoiceParam, Constant, Float, Int, Ordinal, Param
from spaces.values import as_rng, choice_key

__all__ = ["mutate_value", "mutate", "neighbours", "crossover"]


def mutate_value(p: Param, v: Any, rng: np.random.Generator) -> Any:
    """A different value of ``p`` near ``v`` (``v`` itself when ``p`` has a single value)."""
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
    i = vals.index(p.normalize(v)) if not isinstance(p, ChoiceParam) else p.index(v)
    j = int(rng.integers(card - 1))
    return vals[j + 1 if j >= i else j]


def mutate(space: SpaceGraph, config: Mapping[str, Any], prob: float = 0.2,
           rng: np.random.Generator | int | None = None) -> dict:
    """Change each active parameter with probability ``prob``; the result is valid."""
    if not 0.0 <= prob <= 1.0:
        raise SpaceError(f"mutate: prob must be in [0, 1], got {prob!r}")
    rng = as_rng(rng)
    base = space.canonical(config)
    for _ in range(100):
        new = dict(base)
        for n in list(base):
            if rng.random() < prob:
                new[n] = mutate_value(space.params[n], base[n], rng)
        new = space.repair(new, rng)
        if not space.is_forbidden(new):
            return new
    return space.repair(base, rng)


def neighbours(space: SpaceGraph, config: Mapping[str, Any],
               rng: np.random.Generator | int | None = None) -> list[dict]:
    """Configs differing in one active parameter (adjacent values for ordered params, every
    other value for categoricals); newly active params get defaults (or samples with rng)."""
    r = as_rng(rng) if rng is not None else None
    base = space.canonical(config)
    out: list[dict] = []
    seen = {space.config_id(base)}
    for n, v in base.items():
        p = space.params[n]
        cands: list = []
        if isinstance(p, Categorical):
            cands = [c for c in p.values if choice_key(c) != choice_key(v)]
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
            new = space.repair(new, r)
            if space.is_forbidden(new):
                continue
            cid = space.config_id(new)
            if cid not in seen:
                seen.add(cid)
                out.append(new)
    return out


def crossover(space: SpaceGraph, a: Mapping[str, Any], b: Mapping[str, Any],
              rng: np.random.Generator | int | None = None) -> dict:
    """Uniform crossover: each active parameter comes from ``a`` or ``b`` (sampled if neither
    has it active); the result is valid."""
    rng = as_rng(rng)
    a, b = space.canonical(a), space.canonical(b)
    for _ in range(100):
        child: dict = {}
        for n, p, active in space.steps:
            if active is not None and not active(child):
                continue
            opts = [x[n] for x in (a, b) if n in x and p.contains(x[n])]
            if not opts:
                child[n] = p._draw(float(rng.random()))
            else:
                child[n] = opts[int(rng.integers(len(opts)))]
        if not space.is_forbidden(child):
            return child
    return space.repair(a, rng)
