"""The terminal progress view counts trials the way a user reads them."""
from __future__ import annotations

import io
from types import SimpleNamespace

from orchestrator.progress import ProgressCallback


def _trial(tid: str, status: str = "RUNNING", last_result: dict | None = None):
    return SimpleNamespace(trial_id=tid, status=status, last_result=last_result or {})


def test_line_counts_done_pruned_running_and_best():
    out = io.StringIO()
    cb = ProgressCallback("exp", "val_acc", "max", max_epochs=3, stream=out, total=3)
    a, b, c = _trial("a"), _trial("b"), _trial("c", status="PENDING")
    trials = [a, b, c]
    for t in (a, b):
        cb.on_trial_start(0, trials, t)
    cb.on_trial_result(0, trials, a, {"val_acc": 0.5, "training_iteration": 1})
    cb.on_trial_result(0, trials, b, {"val_acc": 0.7, "training_iteration": 1})
    # Ray calls on_trial_complete while the trial still says RUNNING
    a.last_result = {"val_acc": 0.5, "training_iteration": 1}
    cb.on_trial_complete(0, trials, a)
    line = cb.line(trials)
    assert line.startswith("[exp] 1/3 done (1 pruned)"), line
    assert "| 1 running |" in line, line
    assert "best val_acc=0.7 (b)" in line, line
    b.last_result = {"val_acc": 0.9, "training_iteration": 3}
    cb.on_trial_result(0, trials, b, b.last_result)
    cb.on_trial_complete(0, trials, b)
    line = cb.line(trials)
    assert line.startswith("[exp] 2/3 done (1 pruned)") and "| 0 running |" in line, line
    assert "best val_acc=0.9 (b)" in line
    assert "[exp]" in out.getvalue()


def test_min_mode_and_diverged_results_never_best():
    cb = ProgressCallback("exp", "val_loss", "min", max_epochs=2, stream=io.StringIO())
    t = _trial("t")
    cb.on_trial_result(0, [t], t, {"val_loss": 0.3})
    cb.on_trial_result(0, [t], t, {"val_loss": 1e-9, "diverged": 1})
    cb.on_trial_result(0, [t], t, {"val_loss": 0.2})
    assert cb.best == 0.2


def test_a_resumed_experiment_counts_on_from_the_snapshot():
    import pickle

    cb = ProgressCallback("exp", "val_acc", "max", max_epochs=1, stream=io.StringIO(), total=4)
    at_start = pickle.dumps(cb)  # what Tune keeps in tuner.pkl
    trials = [_trial(t) for t in "abcd"]
    for t in trials[:3]:
        cb.on_trial_start(0, trials, t)
        t.last_result = {"val_acc": 0.5 + 0.1 * "abc".index(t.trial_id), "training_iteration": 1}
        cb.on_trial_result(0, trials, t, t.last_result)
        cb.on_trial_complete(0, trials, t)
    state = pickle.loads(pickle.dumps(cb.get_state()))  # Tune's experiment snapshot

    resumed = pickle.loads(at_start)
    resumed.set_state(state)
    resumed.setup()
    d = trials[3]
    resumed.on_trial_start(0, trials, d)
    d.last_result = {"val_acc": 0.6, "training_iteration": 1}
    resumed.on_trial_result(0, trials, d, d.last_result)
    resumed.on_trial_complete(0, trials, d)
    line = resumed.line([])
    assert line.startswith("[exp] 4/4 done"), line
    assert "best val_acc=0.7 (c)" in line, line


def test_duplicates_never_become_best():
    cb = ProgressCallback("exp", "val_acc", "max", max_epochs=1, stream=io.StringIO())
    a, b = _trial("a"), _trial("b")
    cb.on_trial_result(0, [a, b], a, {"val_acc": 0.5})
    cb.on_trial_result(0, [a, b], b, {"val_acc": 0.5, "duplicate": 1})
    assert cb.best_trial == "a"
