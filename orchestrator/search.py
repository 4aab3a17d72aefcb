"""Searcher and scheduler factories.

- ``random``: :class:`SpaceSearcher`, the space's own seeded sampler as a Tune ``Searcher``;
  a configuration already tried is never trained again (the trial reports the earlier result
  and is counted as ``duplicate``).
- ``grid``: :class:`GridSearcher`, every distinct valid configuration once.
- ``tpe``: :class:`PruningOptunaSearch`, Optuna TPE define-by-run over ``to_optuna(space)``;
  trials a scheduler stopped early are told to Optuna as PRUNED with their intermediate values
  (Ray would record them COMPLETE with a truncated value, which misleads TPE).
- schedulers: fifo, asha, hyperband, median, pbt, pb2 (``max_t`` is the experiment's
  ``max_epochs``; time is ``training_iteration`` = epochs reported).
"""
from __future__ import annotations

import math
import os
import pickle
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from orchestrator.errors import SpecError
from orchestrator.mutations import pbt_mutations
from orchestrator.trials import DUPLICATE_KEY, RAY_RESULT_KEYS, REUSE_KEY, atomic_pickle

__all__ = ["GridSearcher", "PruningOptunaSearch", "SpaceSearcher", "TIME_ATTR", "make_asha",
           "make_fifo", "make_grid", "make_hyperband", "make_median", "make_pb2", "make_pbt",
           "make_random", "make_scheduler", "make_searcher", "make_tpe", "pbt_mutations",
           "perturbation_interval"]

TIME_ATTR = "training_iteration"


class _StatefulSearcher(Searcher):
    """Base of archtune's own searchers: ``metric``/``mode`` may be bound late (by the Tuner),
    and ``save``/``restore`` pickle what the subclass's ``get_state``/``set_state`` hold."""

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        if metric:
            self._metric = metric
        if mode:
            self._mode = mode
        return True

    def save(self, checkpoint_path: str) -> None:
        atomic_pickle(self.get_state(), checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


class SpaceSearcher(_StatefulSearcher):
    """Random search with the space's own seeded sampler (conditions and forbidden clauses
    respected). ``suggest`` returns a config dict, or ``None`` while a duplicate's original
    is still running. Duplicates (same ``space.config_id``) are answered with the earlier
    result instead of training again."""

    def __init__(self, space: Any, *, seed: int | None = 0, metric: str | None = None,
                 mode: str | None = None, max_tries: int = 1) -> None:
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self._rng = np.random.default_rng(seed)
        self._max_tries = max(1, int(max_tries))
        self._by_id: dict[str, str] = {}        # config_id -> first trial id
        self._trial_cfg: dict[str, str] = {}    # trial id -> config_id
        self._results: dict[str, dict] = {}     # config_id -> final result of the first trial
        self._failed: set[str] = set()          # config ids whose first trial errored
        self._pending: dict | None = None        # duplicate waiting for its original
        self.n_suggested = 0
        self.n_duplicates = 0

    # -- Searcher API ------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | None:
        cfg = self._pending
        if cfg is None:
            for _ in range(self._max_tries):
                cfg = self.space.canonical(self.space.sample(self._rng))
                if self.space.config_id(cfg) not in self._by_id:
                    break
        cid = self.space.config_id(cfg)
        first = self._by_id.get(cid)
        if first is None or cid in self._failed:
            self._pending = None
            self._failed.discard(cid)
            self._by_id[cid] = trial_id
            self._trial_cfg[trial_id] = cid
            self.n_suggested += 1
            return dict(cfg)
        if cid not in self._results:  # the original is still running: wait for it
            self._pending = cfg
            return None
        self._pending = None
        self.n_suggested += 1
        self.n_duplicates += 1
        self._trial_cfg[trial_id] = cid
        return {**cfg, DUPLICATE_KEY: first, REUSE_KEY: dict(self._results[cid])}

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        cid = self._trial_cfg.get(trial_id)
        if cid is None or self._by_id.get(cid) != trial_id:
            return
        if error or not result:
            self._failed.add(cid)
            return
        self._results[cid] = {k: v for k, v in result.items()
                              if k not in RAY_RESULT_KEYS and "/" not in k
                              and isinstance(v, (int, float, str, bool))}

    # -- state ---------------------------------------------------------------------------
    def get_state(self) -> dict:
        return {
            "rng": self._rng.bit_generator.state, "by_id": dict(self._by_id),
            "trial_cfg": dict(self._trial_cfg), "results": dict(self._results),
            "failed": set(self._failed), "pending": self._pending,
            "n_suggested": self.n_suggested, "n_duplicates": self.n_duplicates,
            "metric": self._metric, "mode": self._mode,
        }

    def set_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._by_id = dict(state["by_id"])
        self._trial_cfg = dict(state["trial_cfg"])
        self._results = dict(state["results"])
        self._failed = set(state["failed"])
        self._pending = state["pending"]
        self.n_suggested = state["n_suggested"]
        self.n_duplicates = state["n_duplicates"]
        self._metric, self._mode = state["metric"], state["mode"]


class GridSearcher(_StatefulSearcher):
    """Every distinct valid configuration of a discrete space, in ``space.iter_configs``
    order; ``Searcher.FINISHED`` afterwards."""

    def __init__(self, space: Any, *, metric: str | None = None, mode: str | None = None) -> None:
        super().__init__(metric=metric, mode=mode)
        self.configs = [space.canonical(c) for c in space.iter_configs()]
        self._next = 0

    def suggest(self, trial_id: str) -> dict | None:
        if self._next >= len(self.configs):
            return Searcher.FINISHED
        cfg = self.configs[self._next]
        self._next += 1
        return dict(cfg)

    def on_trial_complete(self, trial_id, result=None, error=False) -> None:
        pass

    def get_state(self) -> dict:
        return {"next": self._next, "metric": self._metric, "mode": self._mode}

    def set_state(self, state: dict) -> None:
        self._next = state["next"]
        self._metric, self._mode = state["metric"], state["mode"]


class PruningOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth about early-stopped trials: a trial whose
    last result is below ``max_t`` epochs (and did not diverge) is PRUNED, with every
    intermediate value reported. Forbidden configurations raised as ``TrialPruned`` by the
    define-by-run function are told PRUNED and re-asked."""

    def __init__(self, *args, max_t: int, time_attr: str = TIME_ATTR, **kwargs):
        self._max_t = int(max_t)
        self._time_attr = time_attr
        self._reported: dict[str, set] = {}
        self.n_pruned_told = 0
        super().__init__(*args, **kwargs)

    def suggest(self, trial_id: str):
        import optuna

        for _ in range(100):
            try:
                return super().suggest(trial_id)
            except optuna.TrialPruned:
                ot_trial = self._ot_trials.pop(trial_id)
                self._ot_study.tell(ot_trial, state=optuna.trial.TrialState.PRUNED)
        raise SpecError("the space's forbidden clauses rejected 100 Optuna proposals in a "
                        "row; the space is (nearly) empty")

    def save(self, checkpoint_path: str) -> None:
        # the define-by-run function is a closure: plain pickle cannot hold it
        import ray.cloudpickle as cloudpickle

        tmp = f"{checkpoint_path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            cloudpickle.dump(self.__dict__.copy(), f)
        os.replace(tmp, checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        super().restore(checkpoint_path)
        self.reconcile()

    def reconcile(self) -> None:
        """Bring a restored searcher and its Optuna study into agreement. The study (e.g. a
        ``sqlite:///`` storage shared with optuna-dashboard) lives on past Tune's last
        snapshot: a trial that finished after it is re-run by Tune but must not be told
        again (Optuna raises ``UpdateFinishedTrialError``), and a trial asked for after it is
        unknown to Tune and would stay RUNNING in the study forever: it is told FAIL."""
        import optuna

        ours = {t._trial_id: tid for tid, t in self._ot_trials.items()}
        for frozen in self._ot_study.get_trials(deepcopy=False):
            tid = ours.get(frozen._trial_id)
            if tid is None:
                if frozen.state == optuna.trial.TrialState.RUNNING:
                    self._ot_study.tell(frozen.number, state=optuna.trial.TrialState.FAIL)
            elif frozen.state.is_finished():
                self._completed_trials.add(tid)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._completed_trials or trial_id not in self._ot_trials:
            return
        value, step = result.get(self.metric), result.get(self._time_attr)
        if value is None or step is None:
            return
        seen = self._reported.setdefault(trial_id, set())
        if step in seen:
            return
        seen.add(step)
        self._ot_trials[trial_id].report(float(value), int(step))

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        import optuna

        if (not error and result and trial_id in self._ot_trials
                and trial_id not in self._completed_trials
                and result.get(self.metric) is not None and not result.get("diverged")):
            reached = result.get("epoch", result.get(self._time_attr, self._max_t))
            if reached is not None and reached < self._max_t:
                # the scheduler's STOP result never reached on_trial_result
                self.on_trial_result(trial_id, result)
                try:
                    self._ot_study.tell(self._ot_trials[trial_id],
                                        state=optuna.trial.TrialState.PRUNED)
                except Exception:  # noqa: BLE001 - e.g. NaN intermediate values
                    super().on_trial_complete(trial_id, result=result, error=error)
                    return
                self.n_pruned_told += 1
                self._completed_trials.add(trial_id)
                self._reported.pop(trial_id, None)
                return
        super().on_trial_complete(trial_id, result=result, error=error)


def _seed(exp: Any) -> int | None:
    return exp.searcher.seed if exp.searcher.seed is not None else exp.seed


def make_searcher(exp: Any, space: Any, *, max_concurrent: int = 0):
    """The Tune search algorithm for ``exp`` (a Ray ``BasicVariantGenerator`` for PBT/PB2,
    which draw their own population through ``param_space``), wrapped in
    :class:`~orchestrator.arch_dedup.ArchDedup` so no architecture is trained twice."""
    from orchestrator.registries import SCHEDULERS, SEARCHERS

    if SCHEDULERS.meta(exp.scheduler.type).get("population"):
        from ray.tune.search.basic_variant import BasicVariantGenerator

        # Tune ignores max_concurrent_trials for a BasicVariantGenerator: it limits itself
        return BasicVariantGenerator(random_state=_seed(exp), max_concurrent=max_concurrent)
    from orchestrator.arch_dedup import ArchDedup

    return ArchDedup(SEARCHERS.create(exp.searcher.type, exp, space), space, max_t=exp.max_epochs)


def make_random(exp: Any, space: Any) -> SpaceSearcher:
    """``random``: the space's seeded sampler, duplicates answered from the earlier trial."""
    return SpaceSearcher(space, seed=_seed(exp), metric=exp.metric, mode=exp.mode)


def make_grid(exp: Any, space: Any) -> GridSearcher:
    """``grid``: every distinct configuration once (refused above ``max_grid_size``)."""
    size = space.size()
    if size == math.inf or size > exp.searcher.max_grid_size:
        raise SpecError(f"{exp.source or 'experiment'}: key 'searcher.type': grid search "
                        f"over {size} configurations exceeds the limit "
                        f"{exp.searcher.max_grid_size}")
    return GridSearcher(space, metric=exp.metric, mode=exp.mode)


def make_tpe(exp: Any, space: Any) -> PruningOptunaSearch:
    """``tpe``: Optuna TPE define-by-run, early-stopped trials told as PRUNED."""
    import optuna

    from spaces.compile.optuna import to_optuna

    s = exp.searcher
    sampler = optuna.samplers.TPESampler(seed=_seed(exp), n_startup_trials=s.n_startup_trials,
                                         multivariate=s.multivariate)
    storage = optuna.storages.RDBStorage(s.storage) if s.storage else None
    return PruningOptunaSearch(space=to_optuna(space), metric=exp.metric, mode=exp.mode,
                               sampler=sampler, storage=storage,
                               study_name=s.study_name or exp.name, max_t=exp.max_epochs)


def make_scheduler(exp: Any, space: Any):
    """The Tune trial scheduler for ``exp`` (``None`` = FIFO)."""
    from orchestrator.registries import SCHEDULERS

    return SCHEDULERS.create(exp.scheduler.type, exp, space)


def make_fifo(exp: Any, space: Any):
    """``fifo``: every trial runs to ``max_epochs`` (Ray's default order)."""
    from orchestrator.scheduler_state import ResumableFIFO

    return ResumableFIFO()


def make_asha(exp: Any, space: Any):
    """``asha``: asynchronous successive halving over epochs."""
    from orchestrator.scheduler_state import ResumableASHA

    o = exp.scheduler.options
    return ResumableASHA(time_attr=TIME_ATTR, max_t=exp.max_epochs,
                         grace_period=int(o.get("grace_period", 1)),
                         reduction_factor=o.get("reduction_factor", 2),
                         brackets=int(o.get("brackets", 1)))


def make_hyperband(exp: Any, space: Any):
    """``hyperband``: synchronous HyperBand (pauses and resumes trials)."""
    from orchestrator.scheduler_state import ResumableHyperBand

    return ResumableHyperBand(time_attr=TIME_ATTR, max_t=exp.max_epochs,
                              reduction_factor=exp.scheduler.options.get("reduction_factor", 3))


def make_median(exp: Any, space: Any):
    """``median``: the median stopping rule."""
    from orchestrator.scheduler_state import ResumableMedian

    o = exp.scheduler.options
    return ResumableMedian(time_attr=TIME_ATTR, grace_period=o.get("grace_period", 1),
                              min_samples_required=o.get("min_samples_required", 3),
                              hard_stop=o.get("hard_stop", True))


def make_pbt(exp: Any, space: Any):
    """``pbt``: population-based training over the space's mutable parameters."""
    from orchestrator.pbt import SpacePBT

    o = exp.scheduler.options
    kw = {k: o[k] for k in ("burn_in_period", "quantile_fraction", "resample_probability",
                            "synch") if k in o}
    if "perturbation_factors" in o:
        kw["perturbation_factors"] = tuple(o["perturbation_factors"])
    # every explored configuration is moved back into the space (orchestrator.pbt)
    return SpacePBT(
        space=space, seed=_seed(exp), time_attr=TIME_ATTR,
        perturbation_interval=perturbation_interval(exp),
        hyperparam_mutations=pbt_mutations(space, seed=_seed(exp)), **kw)


def make_pb2(exp: Any, space: Any):
    """``pb2``: PB2 over numeric mutable parameters, proposals snapped onto the space."""
    from orchestrator.pbt import SpacePB2

    o = exp.scheduler.options
    kw = {k: o[k] for k in ("quantile_fraction", "synch") if k in o}
    bounds = pbt_mutations(space, pb2=True)
    if not bounds:
        raise SpecError(f"{exp.source or 'experiment'}: key 'scheduler.type': pb2 needs at "
                        f"least one numeric mutable parameter (float, int, or a choice of "
                        f"numbers); use 'pbt' for non-numeric choices")
    # PB2 proposes any real in [min, max]: each proposal is snapped onto the space and its
    # conditional children repaired before it becomes the trial's config
    return SpacePB2(space=space, seed=_seed(exp), time_attr=TIME_ATTR,
                    perturbation_interval=perturbation_interval(exp),
                    hyperparam_bounds=bounds, **kw)


def perturbation_interval(exp: Any) -> int:
    return int(exp.scheduler.options.get("perturbation_interval", 2))
