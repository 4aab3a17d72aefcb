"""Metric constraints such as ``"params <= 2e5"`` (the evolution searcher's ``constraints``, the
one-shot subnet search's filters): parsing, checked when a spec is validated, and the amount by
which a result violates them. No Ray import."""
from __future__ import annotations

import math
import re
from typing import Sequence

from orchestrator.errors import SpecError

__all__ = ["parse_constraint", "violation"]

_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w./-]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """``"params <= 2e5"`` -> ``("params", "<=", 200000.0)``; SpecError if malformed."""
    m = _CONSTRAINT.match(str(text))
    if not m:
        raise SpecError(f"constraint {text!r} must look like 'metric <= number' (or >=, <, >)")
    try:
        bound = float(m.group(3))
    except ValueError:
        raise SpecError(f"constraint {text!r}: {m.group(3)!r} is not a number") from None
    return m.group(1), m.group(2), bound


def violation(result: dict, constraints: Sequence[tuple[str, str, float]]) -> float:
    """How far ``result`` breaks the parsed ``constraints``: 0 when it meets all of them, the
    summed gaps otherwise, ``inf`` when a constrained metric is missing or NaN."""
    total = 0.0
    for name, op, bound in constraints:
        v = result.get(name)
        if v is None or not isinstance(v, (int, float)) or math.isnan(v):
            total += math.inf
            continue
        gap = (v - bound) if op in ("<=", "<") else (bound - v)
        if gap > 0 or (op in ("<", ">") and gap == 0):
            total += max(gap, 1e-12)
    return total
