"""State that must survive a driver crash and ``archtune resume``: the Optuna study in a
sqlite storage agrees with Tune's restored experiment."""
from __future__ import annotations

import optuna
from trainers_for_tests import TOY_SPACE

from orchestrator import Experiment
from orchestrator.search import make_tpe


def _tpe(tmp_path):
    exp = Experiment.from_dict({
        "name": "st", "space": TOY_SPACE, "trainer": "trainers_for_tests:curve",
        "searcher": {"type": "tpe", "seed": 0, "storage": f"sqlite:///{tmp_path}/study.db"},
        "num_samples": 4, "max_epochs": 2, "storage": str(tmp_path / "runs")})
    return make_tpe(exp, exp.load_space())


def test_sqlite_study_reconciled_with_the_restored_snapshot(tmp_path):
    searcher = _tpe(tmp_path)
    searcher.suggest("a")
    searcher.suggest("b")
    searcher.save(str(tmp_path / "snapshot.pkl"))  # Tune's last experiment snapshot
    # after the snapshot, before the crash: 'a' finishes, 'c' is asked for
    searcher.on_trial_result("a", {"val_acc": 0.5, "training_iteration": 1})
    searcher.on_trial_result("a", {"val_acc": 0.6, "training_iteration": 2})
    searcher.on_trial_complete("a", {"val_acc": 0.6, "training_iteration": 2, "epoch": 2})
    searcher.suggest("c")

    resumed = _tpe(tmp_path)
    resumed.restore(str(tmp_path / "snapshot.pkl"))
    # Tune re-runs 'a' (the snapshot says running) and 'b'; 'c' is unknown to it
    for tid in ("a", "b"):
        resumed.on_trial_result(tid, {"val_acc": 0.5, "training_iteration": 1})
        resumed.on_trial_result(tid, {"val_acc": 0.7, "training_iteration": 2})
        resumed.on_trial_complete(tid, {"val_acc": 0.7, "training_iteration": 2, "epoch": 2})
    resumed.suggest("d")
    resumed.on_trial_complete("d", {"val_acc": 0.4, "training_iteration": 2, "epoch": 2})

    study = optuna.load_study(study_name="st", storage=f"sqlite:///{tmp_path}/study.db")
    states = [t.state for t in study.get_trials()]
    assert optuna.trial.TrialState.RUNNING not in states, states
    values = {t.number: t.value for t in study.get_trials()}
    assert values[0] == 0.6  # 'a' keeps the value it finished with before the crash
    assert values[1] == 0.7 and states[2] == optuna.trial.TrialState.FAIL
    assert len(states) == 4
