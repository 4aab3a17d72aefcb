"""What population-based training may perturb in a space (no Ray import: validating an
experiment asks :func:`pbt_mutations` whether anything is mutable without starting Ray).

The result is Ray's ``hyperparam_mutations`` (PBT) or ``hyperparam_bounds`` (PB2) mapping.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Resample", "pbt_mutations"]


@dataclass
class Resample:
    """A PBT resample distribution for a continuous parameter: each call is a fresh draw from
    ``param`` (log-uniform for a log-scale Float, on its step grid for a stepped one) with the
    seeded generator ``rng``. Ray's PBT calls it with no arguments."""

    param: Any
    rng: np.random.Generator

    def __call__(self) -> Any:
        return self.param.sample(self.rng)


def _candidates(space: Any) -> list[str]:
    """Those marked ``meta.mutable`` if any are, otherwise every non-architecture, non-constant
    parameter; conditional parameters never (perturbing an inactive one means nothing)."""
    params = space.params
    marked = [n for n, p in params.items()
              if (p.meta or {}).get("mutable") and not space.conditions_for(n)]
    return marked or [n for n, p in params.items()
                      if not (p.meta or {}).get("arch") and type(p).__name__ != "Constant"
                      and not space.conditions_for(n)]


def pbt_mutations(space: Any, *, pb2: bool = False, seed: int | None = 0) -> dict[str, Any]:
    """Parameters PBT may perturb (see :func:`_candidates`). PBT gets value lists (discrete)
    or a :class:`Resample` (Float); PB2 gets numeric ``[low, high]`` bounds: Float and Int
    ranges, and ``[min, max]`` of a choice whose values are all numbers (PB2's proposals are
    snapped back to the nearest allowed value, :func:`orchestrator.adapter.snap_to_space`). PB2
    leaves non-numeric choices (and booleans) alone: a trial keeps, or copies from the trial it
    exploits, their values. An empty mapping means nothing is mutable."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for n in _candidates(space):
        p = space.params[n]
        if type(p).__name__ == "Constant":
            continue
        if p.is_discrete:
            vals = list(space.discrete_values(n))
            if len(vals) < 2:
                continue
            if not pb2:
                out[n] = vals
                continue
            nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(nums) == len(vals):
                out[n] = [min(nums), max(nums)]
        elif hasattr(p, "low"):
            out[n] = [p.low, p.high] if pb2 else Resample(p, rng)
    return out
