"""Vectorised predicates over batch-drawn columns, shared by conditions, forbidden clauses and
the batch sampler.

A :data:`VectorFn` maps ``(cols, masks)`` to one bool per row: ``cols[name]`` holds a drawn value
per row (choice indices for choice parameters) and ``masks[name]`` the parameter's activity per
row, or None when it is always active. Imports only numpy.
"""
from __future__ import annotations

import operator
from typing import Any, Callable, Iterable, Mapping

import numpy as np

__all__ = ["VectorFn", "and_mask", "member", "all_of", "any_of"]

VectorFn = Callable[[Mapping[str, np.ndarray], Mapping[str, "np.ndarray | None"]], np.ndarray]


def and_mask(hit: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """``hit`` restricted to the active rows (``mask`` None: every row is active)."""
    return hit if mask is None else hit & mask


def member(p: Any, name: str, values: Iterable, negate: bool = False) -> VectorFn:
    """Rows where ``name`` is active and its value is in ``values`` (not in, with ``negate``);
    ``p`` is the parameter named ``name`` (its ``_column_member`` tests a column)."""
    test = p._column_member(tuple(values))
    if negate:
        return lambda cols, masks: and_mask(~test(cols[name]), masks[name])
    return lambda cols, masks: and_mask(test(cols[name]), masks[name])


def _fold(fs: list[VectorFn], op: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> VectorFn:
    if len(fs) == 1:
        return fs[0]

    def run(cols, masks):
        out = fs[0](cols, masks)
        for f in fs[1:]:
            out = op(out, f(cols, masks))
        return out
    return run


def all_of(fs: list[VectorFn]) -> VectorFn:
    """Rows where every one of ``fs`` (one or more) holds."""
    return _fold(fs, operator.and_)


def any_of(fs: list[VectorFn]) -> VectorFn:
    """Rows where at least one of ``fs`` (one or more) holds."""
    return _fold(fs, operator.or_)
