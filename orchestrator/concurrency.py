"""A concurrency limit that follows the cluster as it grows or shrinks.

Without ``max_concurrent`` archtune runs as many trials as the cluster's resources hold, plus
one waiting: the waiting trial's resource request is what makes Ray's autoscaler add a node,
and once the node has joined the limit grows with it (and another trial waits).
"""
from __future__ import annotations

import functools
import logging
import time
from typing import Any, Callable

from ray.tune.search import ConcurrencyLimiter

__all__ = ["GrowingLimiter", "capacity", "growing_limiter"]

log = logging.getLogger("archtune")


def capacity(cpu: float, gpu: float = 0.0) -> int:
    """Trials of ``cpu`` CPUs (and ``gpu`` GPUs) that the cluster's resources hold now (>= 1)."""
    import ray

    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // cpu)
    if gpu > 0:
        n = min(n, int(res.get("GPU", 0) // gpu))
    return max(1, n)


class GrowingLimiter(ConcurrencyLimiter):
    """``ConcurrencyLimiter`` whose limit is ``capacity_fn() + 1``, re-read at most every
    ``refresh_s`` seconds when Tune asks for a trial. ``capacity_fn`` must pickle (Tune saves
    the searcher with every experiment snapshot): a module-level function or a partial."""

    def __init__(self, searcher: Any, capacity_fn: Callable[[], int],
                 refresh_s: float = 2.0) -> None:
        self._capacity_fn, self._refresh_s = capacity_fn, float(refresh_s)
        self._checked = time.monotonic()
        super().__init__(searcher, max_concurrent=capacity_fn() + 1)

    def suggest(self, trial_id: str) -> dict | None:
        now = time.monotonic()
        if now - self._checked >= self._refresh_s:
            self._checked = now
            limit = self._capacity_fn() + 1
            if limit != self.max_concurrent:
                log.info("concurrency limit %d -> %d (the cluster's resources changed)",
                         self.max_concurrent, limit)
                self.max_concurrent = limit
        return super().suggest(trial_id)

    def set_state(self, state: dict) -> None:
        super().set_state(state)
        self._checked = time.monotonic()  # a monotonic clock does not survive a restart


def growing_limiter(searcher: Any, cpu: float, gpu: float = 0.0) -> GrowingLimiter:
    """``searcher`` limited to what the cluster holds for trials of ``cpu``/``gpu``, plus one."""
    return GrowingLimiter(searcher, functools.partial(capacity, cpu, gpu))
