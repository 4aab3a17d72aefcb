"""Ray Tune adapter of :class:`~orchestrator.quick.policy.QuickPolicy`."""
from __future__ import annotations

import os
import pickle

from ray.tune.search import Searcher

from .policy import QuickPolicy

__all__ = ["QuickSearcher"]


class QuickSearcher(Searcher):
    """``searcher: {type: quick}``: warm start, learning-curve model, cost and failure aware.

    Every intermediate result (``on_trial_result``) feeds the model, so trials an early-stopping
    scheduler (ASHA, Hyperband, median) cut short still inform later proposals; a trial that
    errored or reported ``diverged`` marks its region as failing. A configuration is proposed at
    most once, so no duplicate is ever trained. ``save``/``restore`` (used by ``archtune
    resume``) write the policy's plain-data state atomically.
    """

    def __init__(self, policy: QuickPolicy, *, metric: str | None = None,
                 mode: str | None = None, time_attr: str = "training_iteration") -> None:
        super().__init__(metric=metric, mode=mode)
        self.policy = policy
        self._time_attr = time_attr

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
            self.policy.sign = 1.0 if mode == "max" else -1.0
        return True

    def suggest(self, trial_id: str) -> dict | None:
        return self.policy.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        value, step = result.get(self.metric), result.get("epoch", result.get(self._time_attr))
        if value is None or step is None:
            return
        self.policy.observe(trial_id, int(step), float(value),
                            result.get("epoch_time_s", result.get("time_this_iter_s")))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result and not error:
            self.on_trial_result(trial_id, result)
        failed = bool(error or (result or {}).get("diverged"))
        self.policy.complete(trial_id, failed=failed)

    def get_state(self) -> dict:
        return {"policy": self.policy.get_state(), "metric": self._metric, "mode": self._mode}

    def set_state(self, state: dict) -> None:
        self.policy.set_state(state["policy"])
        self._metric, self._mode = state["metric"], state["mode"]

    def save(self, checkpoint_path: str) -> None:
        tmp = f"{checkpoint_path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            pickle.dump(self.get_state(), fh)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as fh:
            self.set_state(pickle.load(fh))
