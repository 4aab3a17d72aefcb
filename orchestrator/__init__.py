"""archtune orchestrator: experiment specs, searchers/schedulers and the Ray Tune runner.

    from orchestrator import Experiment, run
    results = run(Experiment.from_yaml("examples/quickstart.yaml"))
"""
from __future__ import annotations

from typing import Any

from .spec import Experiment, SchedulerSpec, SearcherSpec, ResourcesSpec

__all__ = ["Experiment", "SearcherSpec", "SchedulerSpec", "ResourcesSpec", "run", "resume",
           "submit", "Results"]


def __getattr__(name: str) -> Any:
    # lazy: importing the package must not import ray
    if name in ("run", "resume", "Results"):
        from . import runner

        return getattr(runner, name)
    if name == "submit":
        from .jobs import submit

        return submit
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
