"""The one rule that picks the best trial, shared by the results table, the report, the
progress line and TensorBoard's best-so-far scalar.

A row (a results-table row, or a trial's result with its ``trial_id``) competes when its
objective is a finite number and it is not diverged, errored, a duplicate (a duplicate repeats
an earlier trial's result: the earlier trial is the one to name) or interrupted. Among equal
values the first row wins, so the order of ``rows`` breaks ties.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

__all__ = ["EXCLUDED_STATUSES", "objective_value", "select_best"]

EXCLUDED_STATUSES = frozenset({"diverged", "errored", "duplicate", "interrupted"})


def objective_value(row: Mapping[str, Any], metric: str) -> float | None:
    """``row[metric]`` as a float when ``row`` competes for best, else ``None``."""
    if row.get("status") in EXCLUDED_STATUSES or _flag(row.get("diverged")) or _flag(
            row.get("duplicate")):
        return None
    v = row.get(metric)
    if isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def select_best(rows: Iterable[Mapping[str, Any]], metric: str,
                mode: str) -> Mapping[str, Any] | None:
    """The best competing row of ``rows`` for ``metric`` (``mode`` ``"max"`` or ``"min"``),
    the first of equal ones; ``None`` when no row competes."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    best, best_v = None, None
    for row in rows:
        v = objective_value(row, metric)
        if v is None:
            continue
        if best_v is None or (v > best_v if mode == "max" else v < best_v):
            best, best_v = row, v
    return best


def _flag(v: Any) -> bool:
    """A 0/1 result flag (NaN in a table column where the trial did not report it)."""
    if isinstance(v, float) and math.isnan(v):
        return False
    return bool(v)
