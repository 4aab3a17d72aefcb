"""Trial schedulers whose state survives ``archtune resume``.

Ray Tune's experiment snapshot holds the trials, the searcher and the callbacks, but not the
trial scheduler: a resumed run would start ASHA/HyperBand rungs empty, restart PBT's
perturbation clock and, for HyperBand, put finished trials into fresh brackets that then wait
for them forever. :class:`SchedulerState` (a callback, so Tune saves it in the same snapshot as
the trials) pickles the scheduler's attributes with each ``Trial`` replaced by its id;
:class:`ResumableScheduler` (mixed into archtune's schedulers) puts them back once the
restored trials have been re-added, mapping the ids onto the restored ``Trial`` objects.
"""
from __future__ import annotations

import io
import logging
from typing import Any

from ray import cloudpickle
from ray.tune import Callback
from ray.tune.experiment import Trial
from ray.tune.schedulers import (AsyncHyperBandScheduler, FIFOScheduler, HyperBandScheduler,
                                 MedianStoppingRule)
from ray.tune.schedulers.hyperband import _Bracket

__all__ = ["ResumableASHA", "ResumableFIFO", "ResumableHyperBand", "ResumableMedian",
           "ResumableScheduler", "SchedulerState", "dump_scheduler", "load_scheduler",
           "snapshot_on_first_checkpoint"]

log = logging.getLogger("archtune")
_RESTORE_KEYS = ("_archtune_saved", "_archtune_restored")


class _Dumper(cloudpickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        return ("trial", obj.trial_id) if isinstance(obj, Trial) else None


def dump_scheduler(scheduler: Any) -> bytes:
    """The scheduler's attributes pickled, every ``Trial`` stored as its id."""
    state = {k: v for k, v in vars(scheduler).items() if k not in _RESTORE_KEYS}
    state = scheduler._archtune_sanitize(state) if hasattr(
        scheduler, "_archtune_sanitize") else state
    buf = io.BytesIO()
    _Dumper(buf).dump(state)
    return buf.getvalue()


def load_scheduler(blob: bytes, trials: dict[str, Any]) -> dict[str, Any]:
    """The attributes :func:`dump_scheduler` saved, trial ids mapped back through ``trials``
    (trial id -> ``Trial``). Raises KeyError for a trial id missing from ``trials``."""
    import pickle

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            return trials[pid[1]]

    return Loader(io.BytesIO(blob)).load()


class ResumableScheduler:
    """Mixin for a Tune ``TrialScheduler``: while a saved state is pending (set by
    :class:`SchedulerState` on resume), trials re-added by Tune are only collected; at the
    scheduler's next call the saved attributes replace the fresh ones. Restored trials the
    saved state does not know are then added as usual."""

    def _archtune_set_saved(self, blob: bytes) -> None:
        self._archtune_saved = blob
        self._archtune_restored: dict[str, Any] = {}

    def _archtune_restore(self, tune_controller: Any) -> None:
        blob = getattr(self, "_archtune_saved", None)
        if blob is None:
            return
        trials = self._archtune_restored
        self._archtune_saved, self._archtune_restored = None, {}
        try:
            state = load_scheduler(blob, trials)
        except KeyError as e:  # the saved state names a trial the snapshot lacks
            log.warning("scheduler state not restored (unknown trial %s); rebuilt fresh", e)
            state, known = None, set()
        if state is not None:
            vars(self).update(state)
            known = {tid for tid in trials if self._archtune_knows(trials[tid])}
        for tid, trial in trials.items():
            # a finished trial the state has let go of stays out (HyperBand would wait on it)
            if tid not in known and trial.status != Trial.TERMINATED:
                super().on_trial_add(tune_controller, trial)
        if state is not None:
            self._archtune_after_restore(tune_controller, [trials[t] for t in known])

    def _archtune_knows(self, trial: Any) -> bool:
        return True

    def _archtune_after_restore(self, tune_controller: Any, trials: list) -> None:
        """Hook: fix trial statuses after the saved state is back."""

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        snapshot_on_first_checkpoint(tune_controller, added=True)
        if getattr(self, "_archtune_saved", None) is not None:
            self._archtune_restored[trial.trial_id] = trial
            return
        super().on_trial_add(tune_controller, trial)

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        self._archtune_restore(tune_controller)
        return super().choose_trial_to_run(tune_controller)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        self._archtune_restore(tune_controller)
        return super().on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._archtune_restore(tune_controller)
        super().on_trial_complete(tune_controller, trial, result)

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._archtune_restore(tune_controller)
        super().on_trial_error(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._archtune_restore(tune_controller)
        super().on_trial_remove(tune_controller, trial)


def snapshot_on_first_checkpoint(tune_controller: Any, added: bool = False) -> None:
    """Make Tune snapshot the experiment when a trial is added (``added``: at the end of this
    controller step) and right after each trial's first checkpoint.

    Tune snapshots at most every ~10 s. A trial started and checkpointed between two snapshots
    is missing from the last one, so after a driver crash the resumed searcher proposes a new
    trial and the orphan's checkpoint is never used (its work is redone from scratch). With the
    trial in a snapshot before it trains, :class:`~orchestrator.checkpoints.CheckpointFallback`
    finds whatever it wrote on resume; the snapshot at its first checkpoint also records that
    checkpoint. ``tune_controller`` is what Tune hands a scheduler (a wrapper around it)."""
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    manager = getattr(controller, "_checkpoint_manager", None)
    if manager is None:
        return
    if added:
        manager._should_force_sync_up = True
    if getattr(manager, "_archtune_first_checkpoints", None) is not None:
        return
    seen: set[str] = set()
    manager._archtune_first_checkpoints = seen
    original = manager.on_trial_checkpoint

    def on_trial_checkpoint(trial: Any) -> None:
        original(trial)
        if trial.trial_id not in seen:
            seen.add(trial.trial_id)
            manager._should_force_sync_up = True

    manager.on_trial_checkpoint = on_trial_checkpoint


class ResumableFIFO(ResumableScheduler, FIFOScheduler):
    """First in, first out (Ray's default), with a snapshot at each trial's first checkpoint."""


class ResumableASHA(ResumableScheduler, AsyncHyperBandScheduler):
    """ASHA whose rungs survive a resume."""

    def _archtune_knows(self, trial: Any) -> bool:
        return trial.trial_id in self._trial_info


class _FillOnceBracket(_Bracket):
    """A HyperBand bracket that is filled once it has taken its ``n0`` trials. Ray's bracket
    counts its *live* trials, so when trials are proposed one at a time (any concurrency
    limit) the first, full-budget bracket takes a new trial each time one of its own finishes
    and the brackets that stop trials early are never opened."""

    def filled(self) -> bool:
        return len(self._all_trials) >= self._n0


class ResumableHyperBand(ResumableScheduler, HyperBandScheduler):
    """HyperBand whose brackets survive a resume; trials that were waiting in a bracket when
    the snapshot was taken (Tune re-queues them as PENDING) wait again, PAUSED. Brackets fill
    by the number of trials they took (:class:`_FillOnceBracket`), so HyperBand's
    early-stopping brackets open under a concurrency limit too."""

    def _create_bracket(self, s: int) -> _Bracket:
        return _FillOnceBracket(time_attr=self._time_attr, max_trials=self._get_n0(s),
                                init_t_attr=self._get_r0(s), max_t_attr=self._max_t_attr,
                                eta=self._eta, s=s, stop_last_trials=self._stop_last_trials)

    def _archtune_knows(self, trial: Any) -> bool:
        return trial in self._trial_info

    def _archtune_after_restore(self, tune_controller: Any, trials: list) -> None:
        for trial in trials:
            bracket, _ = self._trial_info[trial]
            if (trial.status == Trial.PENDING and bracket._live_trials.get(trial) is not None
                    and not bracket.continue_trial(trial)):
                tune_controller._set_trial_status(trial, Trial.PAUSED)


class ResumableMedian(ResumableScheduler, MedianStoppingRule):
    """The median stopping rule with its recorded results kept across a resume."""

    def _archtune_knows(self, trial: Any) -> bool:
        return trial in self._results


class SchedulerState(Callback):
    """Saves ``scheduler`` (a :class:`ResumableScheduler`) with every experiment snapshot and
    hands it back on resume."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler

    def get_state(self) -> dict | None:
        if not isinstance(self.scheduler, ResumableScheduler):
            return None
        pending = getattr(self.scheduler, "_archtune_saved", None)
        # a snapshot taken after a resume but before the scheduler's first call keeps the
        # restored state, not the fresh one it has not replaced yet
        return {"scheduler": pending if pending is not None else dump_scheduler(self.scheduler)}

    def set_state(self, state: dict) -> None:
        if isinstance(self.scheduler, ResumableScheduler) and state.get("scheduler"):
            self.scheduler._archtune_set_saved(state["scheduler"])
