"""TPE proposals for the ``quick`` searcher's candidate pool.

Optuna's TPE with ``multivariate=True, group=True`` models the parameters that appear together
(the conditional branches of the space: ``momentum`` only under ``opt=momentum``, the
``ra-*`` knobs only under RandAugment ...) jointly per group, and ``constant_liar=True`` treats the
trials still running as bad so that concurrent proposals spread out. :class:`TPEProposer` keeps
one in-memory study in step with the policy: a trial is added as RUNNING when it is proposed
and told when it ends, with its final value, or, when a scheduler stopped it early, with the
learning-curve model's prediction of its final value (never the truncated value, which would
mislead TPE). Each proposal is one ``ask``; the asked trial is then closed as FAIL, which TPE
ignores, so only real trials shape the model. The sampler is reseeded from the policy's random
state before each batch of asks, so the proposer needs no state of its own to resume.
"""
from __future__ import annotations

from typing import Any, Mapping

__all__ = ["TPEProposer"]


class TPEProposer:
    """``proposer(policy, n) -> list[config]`` for :class:`~.policy.QuickPolicy` (``tpe=``)."""

    def __init__(self, space: Any, *, seed: int | None = 0, n_startup_trials: int = 8) -> None:
        import optuna

        from spaces.compile.optuna import to_optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        self._fn = to_optuna(space)
        self._startup = int(n_startup_trials)
        self.study = optuna.create_study(direction="maximize", sampler=self._sampler(seed))
        self._number: dict[str, int] = {}   # trial id -> study trial number
        self._told: set[str] = set()

    def _sampler(self, seed: int | None) -> Any:
        import warnings

        import optuna

        # multivariate, group and constant_liar are Optuna's experimental options, chosen
        # knowingly here; their ExperimentalWarning would only be noise to a user
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                              constant_liar=True, n_startup_trials=self._startup)

    def _distributions(self, cfg: Mapping[str, Any]) -> tuple[dict, dict]:
        from optuna.distributions import CategoricalDistribution, IntDistribution

        from spaces.compile.optuna import optuna_choices

        params, dists = {}, {}
        for name, value in cfg.items():
            p = self.space[name]
            kind = type(p).__name__
            if kind == "Ordinal":
                params[name] = list(p.sequence).index(value)
                dists[name] = IntDistribution(0, len(p.sequence) - 1)
            elif kind == "Categorical":
                choices, decode = optuna_choices(p.choices)
                enc = {v: k for k, v in decode.items()} if decode else None
                params[name] = enc[value] if enc else value
                dists[name] = CategoricalDistribution(choices)
        return params, dists

    def _sync(self, policy: Any) -> None:
        import optuna

        ended = []
        for tid, t in policy.trials.items():
            if tid not in self._number:
                params, dists = self._distributions(t["config"])
                self.study.add_trial(optuna.trial.create_trial(
                    params=params, distributions=dists, state=optuna.trial.TrialState.RUNNING))
                self._number[tid] = self.study.get_trials(deepcopy=False)[-1].number
            if t["state"] != "running" and tid not in self._told:
                ended.append((tid, t))
        early = [t["config"] for _, t in ended
                 if t["state"] != "failed" and t["curve"] and max(t["curve"]) < policy.max_epochs]
        predicted = iter(policy.predict(early)[0]) if early else iter(())
        for tid, t in ended:
            self._told.add(tid)
            number = self._number[tid]
            if t["state"] == "failed" or not t["curve"]:
                self.study.tell(number, state=optuna.trial.TrialState.FAIL)
                continue
            last = max(t["curve"])
            value = t["curve"][last]
            if last < policy.max_epochs:  # stopped early: the model's view of its final value
                value = float(next(predicted))
            self.study.tell(number, value)

    def __call__(self, policy: Any, n: int) -> list[dict]:
        import optuna

        self._sync(policy)
        # seeded from the policy's saved random state, so that a resumed search (whose study
        # is rebuilt from the policy's trials) asks exactly what the uninterrupted one would
        self.study.sampler = self._sampler(int(policy.rng.integers(2**31)))
        out = []
        for _ in range(n):
            trial = self.study.ask()
            try:
                out.append(self.space.canonical(self._fn(trial)))
            except optuna.TrialPruned:
                pass
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
        return out
