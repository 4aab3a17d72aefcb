"""Skip architectures already trained, for every searcher (``make_searcher`` wraps each one).

A trainer that reports ``arch_id`` (the space's ``config_id`` over the parameters its builder
read) and ``arch_params`` (those parameter names, comma-separated: the ``nas``, ``compose`` and
``ModelSpace`` trainers do) tells the search which parameters shaped the model. A new
configuration is the same architecture as a trained trial exactly when it agrees with that trial
on the trial's ``arch_params`` (a deterministic builder then reads the same values, hence the
same parameters): ``space.config_id(new, used=arch_params) == arch_id``.

:class:`ArchDedup` checks every suggestion of the wrapped searcher against the trials that
trained to ``max_t`` epochs; a match is not trained again: the trial reports that trial's result
with ``duplicate=1, duplicate_of=<trial>`` (the wrapped searcher is told that result, so model-
based searchers learn from it). Trials stopped early by a scheduler are not reused.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

from ray.tune.search import Searcher

from orchestrator.trials import DUPLICATE_KEY, RAY_RESULT_KEYS, REUSE_KEY, atomic_pickle

__all__ = ["ArchDedup"]


class ArchDedup(Searcher):
    """Wraps ``searcher``; suggestions whose architecture was trained are answered from the
    earlier trial (see the module docstring). Other attributes are the wrapped searcher's."""

    def __init__(self, searcher: Searcher, space: Any, *, max_t: int) -> None:
        super().__init__(metric=getattr(searcher, "metric", None),
                         mode=getattr(searcher, "mode", None))
        self.searcher = searcher
        self.space = space
        self.max_t = int(max_t)
        self.trained: dict[tuple, dict[str, tuple[str, dict]]] = {}  # used -> arch_id -> (trial, result)
        self.n_arch_duplicates = 0

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("searcher")
        if inner is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(inner, name)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        ok = self.searcher.set_search_properties(metric, mode, config, **spec)
        self._metric = getattr(self.searcher, "metric", metric)
        self._mode = getattr(self.searcher, "mode", mode)
        return ok

    def _match(self, cfg: dict) -> tuple[str, dict] | None:
        for used, by_id in self.trained.items():
            hit = by_id.get(self.space.config_id(cfg, used=used))
            if hit is not None:
                return hit
        return None

    def suggest(self, trial_id: str):
        cfg = self.searcher.suggest(trial_id)
        if not isinstance(cfg, dict) or DUPLICATE_KEY in cfg or not self.trained:
            return cfg
        hit = self._match(cfg)
        if hit is None:
            return cfg
        self.n_arch_duplicates += 1
        return {**cfg, DUPLICATE_KEY: hit[0], REUSE_KEY: dict(hit[1])}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)
        if error or not result or result.get("duplicate") or not result.get("arch_id"):
            return
        if "arch_params" not in result or result.get("failed"):
            return
        reached = result.get("epoch", result.get("training_iteration", 0))
        if reached is None or reached < self.max_t:
            return
        used = tuple(sorted(n for n in str(result["arch_params"]).split(",") if n))
        kept = {k: v for k, v in result.items() if k not in RAY_RESULT_KEYS and "/" not in k
                and isinstance(v, (int, float, str, bool))}
        self.trained.setdefault(used, {}).setdefault(str(result["arch_id"]), (trial_id, kept))

    # -- state ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        """This wrapper's own state; Ray's ``SearchGenerator.save_to_dir`` saves the wrapped
        searcher separately (it walks ``.searcher`` links), and ``set_state`` is its inverse."""
        return {"trained": self.trained, "n_arch_duplicates": self.n_arch_duplicates}

    def set_state(self, state: dict) -> None:
        self.trained = state["trained"]
        self.n_arch_duplicates = state["n_arch_duplicates"]

    def save(self, checkpoint_path: str) -> None:
        inner = f"{checkpoint_path}.inner-{os.getpid()}"
        self.searcher.save(inner)
        with open(inner, "rb") as f:
            blob = f.read()
        os.remove(inner)
        atomic_pickle({"inner": blob, "trained": self.trained,
                        "n_arch_duplicates": self.n_arch_duplicates}, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            state = pickle.load(f)
        inner = f"{checkpoint_path}.inner-{os.getpid()}"
        with open(inner, "wb") as f:
            f.write(state["inner"])
        try:
            self.searcher.restore(inner)
        finally:
            os.remove(inner)
        self.trained = state["trained"]
        self.n_arch_duplicates = state["n_arch_duplicates"]
