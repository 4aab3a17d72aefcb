"""Pareto ranks of points with several objectives (numpy only: no Ray, no torch), shared by the
NSGA-II mode of :mod:`orchestrator.evolution` and the Pareto table of :mod:`orchestrator.report`.
Every column is to be maximised: negate a column to minimise it."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["crowding", "nondominated", "nondominated_ranks"]


def nondominated(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows no other row dominates (at least as good in every column and
    better in one). Equal rows do not dominate each other, so duplicates on the front are all
    kept."""
    p = np.asarray(points, dtype=float)
    if len(p) == 0:
        return np.zeros(0, dtype=bool)
    ge = (p[:, None, :] >= p[None, :, :]).all(axis=2)
    gt = (p[:, None, :] > p[None, :, :]).any(axis=2)
    return ~(ge & gt).any(axis=0)


def nondominated_ranks(points: np.ndarray) -> np.ndarray:
    """Pareto rank (0 = non-dominated) of each row, every column to be maximised."""
    p = np.asarray(points, dtype=float)
    ranks = np.full(len(p), -1)
    remaining = np.arange(len(p))
    rank = 0
    while len(remaining):
        front = nondominated(p[remaining])
        ranks[remaining[front]] = rank
        remaining = remaining[~front]
        rank += 1
    return ranks


def crowding(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within its set (boundary points: inf)."""
    n, m = points.shape
    dist = np.zeros(n)
    if n <= 2:
        return np.full(n, math.inf)
    for k in range(m):
        order = np.argsort(points[:, k])
        span = points[order[-1], k] - points[order[0], k]
        dist[order[0]] = dist[order[-1]] = math.inf
        if span <= 0:
            continue
        for a, i in enumerate(order[1:-1], start=1):
            dist[i] += (points[order[a + 1], k] - points[order[a - 1], k]) / span
    return dist
