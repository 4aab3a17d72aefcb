"""Trial-scheduler state survives ``archtune resume`` (orchestrator/scheduler_state.py): the
state saved with a snapshot is put back into a fresh scheduler and mapped onto the restored
``Trial`` objects."""
from __future__ import annotations

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from orchestrator.scheduler_state import ResumableASHA, ResumableHyperBand, SchedulerState

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


class _Controller:
    """What schedulers use of Tune's controller in these tests."""

    search_alg = None

    def _set_trial_status(self, trial, status):
        trial.set_status(status)

    def pause_trial(self, trial, should_checkpoint=True):
        trial.set_status(Trial.PAUSED)

    def stop_trial(self, trial):
        trial.set_status(Trial.TERMINATED)


def _trial(tid: str, status: str = Trial.PENDING) -> Trial:
    t = Trial("__fake", trial_id=tid, stub=True)
    t.set_status(status)
    return t


def _result(it: int, acc: float) -> dict:
    return {"training_iteration": it, "val_acc": acc}


def _asha() -> ResumableASHA:
    return ResumableASHA(time_attr="training_iteration", metric="val_acc", mode="max",
                         max_t=8, grace_period=1, reduction_factor=2)


def _resumed(fresh, saved_from, trials):
    """``fresh`` after Tune's resume sequence: callback state set, restored trials re-added."""
    SchedulerState(fresh).set_state(SchedulerState(saved_from).get_state())
    for t in trials:
        fresh.on_trial_add(_Controller(), t)
    return fresh


def test_asha_rungs_survive_a_resume():
    tc, before = _Controller(), _asha()
    a, b, c = _trial("a"), _trial("b"), _trial("c")
    for t in (a, b, c):
        before.on_trial_add(tc, t)
    for t, acc in ((a, 0.9), (b, 0.8)):
        before.on_trial_result(tc, t, _result(1, acc))
        before.on_trial_result(tc, t, _result(2, acc))
    before.on_trial_result(tc, c, _result(1, 0.5))
    saved = {(m, tid, v) for m, rec in before._brackets[0]._rungs for tid, v in rec.items()}

    restored = [_trial("a", Trial.PENDING), _trial("b"), _trial("c")]
    after = _resumed(_asha(), before, restored)
    # c's second epoch is weighed against a's and b's pre-resume results at rung 2 and stopped
    assert after.on_trial_result(tc, restored[2], _result(2, 0.1)) == TrialScheduler.STOP
    kept = {(m, tid, v) for m, rec in after._brackets[0]._rungs for tid, v in rec.items()}
    assert saved <= kept
    # a fresh scheduler (what Ray's snapshot alone gives) has nothing to compare with
    fresh = _asha()
    for t in restored:
        fresh.on_trial_add(tc, t)
    assert fresh.on_trial_result(tc, restored[2], _result(2, 0.1)) == TrialScheduler.CONTINUE


def test_hyperband_resume_leaves_finished_trials_out_and_keeps_waiting_ones_paused():
    tc = _Controller()
    mk = lambda: ResumableHyperBand(time_attr="training_iteration", metric="val_acc",  # noqa: E731
                                    mode="max", max_t=4, reduction_factor=2)
    before = mk()
    trials = [_trial(x) for x in "abcd"]
    for t in trials:
        before.on_trial_add(tc, t)
    bracket, _ = before._trial_info[trials[0]]
    first = bracket._cumul_r
    # a reaches the bracket's first milestone and waits (PAUSED) for the others
    for it in range(1, first + 1):
        action = before.on_trial_result(tc, trials[0], _result(it, 0.9))
    assert action == TrialScheduler.PAUSE
    restored = [_trial(x) for x in "abcd"]  # Tune re-queues unfinished trials as PENDING
    after = _resumed(mk(), before, restored)
    after.choose_trial_to_run(tc)
    assert restored[0].status == Trial.PAUSED  # still waits for its bracket
    b2, _ = after._trial_info[restored[1]]
    assert b2._live_trials[restored[0]]["training_iteration"] == first
    # every restored trial sits in the bracket it had, as the restored object
    members = lambda sch, ts: [sorted(t.trial_id for t in sch._trial_info[t][0]._live_trials)  # noqa: E731
                               for t in ts]
    assert members(after, restored) == members(before, trials)
    assert all(r in after._trial_info[r][0]._live_trials for r in restored)


def test_hyperband_finished_trial_unknown_to_the_state_is_not_waited_for():
    tc = _Controller()
    mk = lambda: ResumableHyperBand(time_attr="training_iteration", metric="val_acc",  # noqa: E731
                                    mode="max", max_t=4, reduction_factor=2)
    before = mk()
    for x in "ab":
        before.on_trial_add(tc, _trial(x))
    # "z" finished and was released by the scheduler (it is absent from the saved state)
    restored = [_trial("a"), _trial("b"), _trial("z", Trial.TERMINATED)]
    after = _resumed(mk(), before, restored)
    after.choose_trial_to_run(tc)
    assert restored[2] not in after._trial_info
    assert all(restored[2] not in b._live_trials for band in after._hyperbands for b in band
               if b is not None)


def test_pbt_perturbation_clock_survives_a_resume():
    from trainers_for_tests import TOY_SPACE

    from orchestrator.pbt import SpacePBT
    from spaces.formats import load_space

    space = load_space(TOY_SPACE)
    mk = lambda: SpacePBT(space=space, time_attr="training_iteration",  # noqa: E731
                          metric="val_acc", mode="max", perturbation_interval=4,
                          hyperparam_mutations={"lr": [0.1, 0.2]})
    tc, before = _Controller(), mk()
    a = _trial("a")
    before.on_trial_add(tc, a)
    before._trial_state[a].last_perturbation_time = 4
    before._trial_state[a].last_train_time = 6
    before._trial_state[a].last_checkpoint = object()  # never carried over a resume
    restored = _trial("a")
    after = _resumed(mk(), before, [restored])
    after._archtune_restore(tc)
    st = after._trial_state[restored]
    assert (st.last_perturbation_time, st.last_train_time, st.last_checkpoint) == (4, 6, None)


def test_a_snapshot_before_the_first_scheduler_call_keeps_the_restored_state():
    tc, before = _Controller(), _asha()
    a = _trial("a")
    before.on_trial_add(tc, a)
    before.on_trial_result(tc, a, _result(1, 0.9))
    after = _asha()
    SchedulerState(after).set_state(SchedulerState(before).get_state())
    after.on_trial_add(tc, _trial("a"))
    # Tune snapshots again before the scheduler is called: the saved rungs go on
    again = _asha()
    SchedulerState(again).set_state(SchedulerState(after).get_state())
    restored = _trial("a")
    again.on_trial_add(tc, restored)
    again._archtune_restore(tc)
    assert {t: v for _, rec in again._brackets[0]._rungs for t, v in rec.items()} == {"a": 0.9}


class _Trial:
    """Hashable by identity, as Tune's trials are."""

    def __init__(self, trial_id: str) -> None:
        self.trial_id = trial_id


def test_hyperband_brackets_fill_by_the_trials_they_took():
    """Trials proposed one at a time (a concurrency limit), each leaving before the next
    arrives: Ray's bracket counts only live trials and would take every one of them into the
    first, full-budget bracket. Here the first bracket closes after its 3 trials and the next
    ones go to the brackets that stop early (r0 = 2, then 1)."""
    hb = ResumableHyperBand(time_attr="training_iteration", max_t=4, reduction_factor=2)
    hb.set_search_properties("val_acc", "max")
    first_epochs = []
    for i in range(10):
        trial = _Trial(f"t{i}")
        hb.on_trial_add(None, trial)
        bracket, _ = hb._trial_info[trial]
        first_epochs.append(bracket._r0)
        bracket.cleanup_trial(trial)  # what completing or stopping the trial does to it
    assert first_epochs == [4, 4, 4, 2, 2, 2, 1, 1, 1, 1]
