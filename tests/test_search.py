"""Searchers and schedulers: random with duplicate reuse, grid, TPE with PRUNED trials, PBT
mutations."""
from __future__ import annotations

import optuna
import pytest

from orchestrator import Experiment
from orchestrator.adapter import DUPLICATE_KEY, REUSE_KEY
from orchestrator.search import (
    GridSearcher,
    SpaceSearcher,
    make_scheduler,
    make_searcher,
    pbt_mutations,
)
from spaces.formats import load_space
from trainers_for_tests import DISCRETE_SPACE, TOY_SPACE


def _exp(**kw):
    d = dict(name="s", space=TOY_SPACE, trainer="trainers_for_tests:curve",
             searcher={"type": "random", "seed": 0}, num_samples=4, max_epochs=4)
    d.update(kw)
    return Experiment.from_dict(d)


def test_space_searcher_is_seeded_and_valid():
    space = load_space(TOY_SPACE)
    a = [SpaceSearcher(space, seed=3).suggest(f"t{i}") for i in range(1)]
    s1, s2 = SpaceSearcher(space, seed=3), SpaceSearcher(space, seed=3)
    c1 = [s1.suggest(f"t{i}") for i in range(5)]
    c2 = [s2.suggest(f"t{i}") for i in range(5)]
    assert c1 == c2 and c1[0] == a[0]
    for c in c1:
        space.validate(c)
        assert ("momentum" in c) == (c["opt"] == "b")  # inactive params absent


def test_space_searcher_reuses_duplicates_and_waits_for_original():
    space = load_space(DISCRETE_SPACE)  # 6 configs: duplicates come quickly
    s = SpaceSearcher(space, seed=0, metric="val_acc", mode="max")
    seen: dict[str, str] = {}
    n = 0
    waited = False
    while n < 20:
        tid = f"t{n}"
        cfg = s.suggest(tid)
        if cfg is None:  # the original of a duplicate is still running: finish it
            waited = True
            for first in list(seen.values()):
                s.on_trial_complete(first, {"val_acc": 0.5, "epoch": 4, "training_iteration": 4})
            continue
        n += 1
        if DUPLICATE_KEY in cfg:
            assert cfg[REUSE_KEY]["val_acc"] == 0.5 and "training_iteration" not in cfg[REUSE_KEY]
            cid = space.config_id({k: v for k, v in cfg.items() if not k.startswith("_")})
            assert cfg[DUPLICATE_KEY] == seen[cid]
        else:
            cid = space.config_id(cfg)
            assert cid not in seen, "a configuration was trained twice"
            seen[cid] = tid
    assert waited and s.n_duplicates == 20 - len(seen) and len(seen) <= 6


def test_space_searcher_state_round_trip(tmp_path):
    space = load_space(TOY_SPACE)
    s = SpaceSearcher(space, seed=1)
    for i in range(3):
        s.suggest(f"t{i}")
    s.on_trial_complete("t0", {"val_acc": 0.3})
    path = str(tmp_path / "state.pkl")
    s.save(path)
    s2 = SpaceSearcher(space, seed=99)
    s2.restore(path)
    assert [s.suggest("a"), s.suggest("b")] == [s2.suggest("a"), s2.suggest("b")]
    assert not list(tmp_path.glob("*.tmp-*"))  # atomic write left no temp file


def test_grid_searcher_enumerates_every_config_once():
    space = load_space(DISCRETE_SPACE)
    g = GridSearcher(space)
    got = []
    while True:
        c = g.suggest(str(len(got)))
        if c == GridSearcher.FINISHED:
            break
        got.append(c)
    assert len(got) == 6 == len({space.config_id(c) for c in got})


def test_factories():
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler
    from ray.tune.schedulers import MedianStoppingRule, PopulationBasedTraining

    space = load_space(TOY_SPACE)
    fifo = make_scheduler(_exp(), space)  # Ray's FIFO, snapshotting at first checkpoints
    assert type(fifo).__name__ == "ResumableFIFO" and isinstance(fifo, FIFOScheduler)
    a = make_scheduler(_exp(scheduler={"type": "asha", "options": {"grace_period": 2}}), space)
    assert isinstance(a, ASHAScheduler) and a._max_t == 4
    assert isinstance(make_scheduler(_exp(scheduler={"type": "hyperband"}), space),
                      HyperBandScheduler)
    assert isinstance(make_scheduler(_exp(scheduler={"type": "median"}), space), MedianStoppingRule)
    pbt = make_scheduler(_exp(scheduler={"type": "pbt", "perturbation_interval": 2}), space)
    assert isinstance(pbt, PopulationBasedTraining)
    tpe = make_searcher(_exp(searcher={"type": "tpe", "seed": 0}), space)
    assert tpe.metric == "val_acc" and tpe.mode == "max"


def test_pbt_mutations_use_mutable_non_arch_params():
    muts = pbt_mutations(load_space("quicktune_cpu"))
    assert "lr" in muts and "weight-decay" in muts and "mixup" in muts
    assert "model" not in muts and "momentum" not in muts  # arch / conditional
    assert list(muts["lr"]) == sorted(muts["lr"])
    toy = pbt_mutations(load_space(TOY_SPACE))  # nothing marked: non-arch unconditional
    assert {"x", "lr", "opt", "depth"} <= set(toy) and "momentum" not in toy
    bounds = pbt_mutations(load_space(TOY_SPACE), pb2=True)
    assert bounds["x"] == [0.0, 1.0] and "opt" not in bounds


def test_tpe_with_asha_tells_optuna_pruned(ray_session, tmp_path):
    from orchestrator import run

    db = f"sqlite:///{tmp_path / 'study.db'}"
    exp = _exp(searcher={"type": "tpe", "seed": 0, "n_startup_trials": 3, "storage": db},
               scheduler={"type": "asha", "options": {"grace_period": 1, "reduction_factor": 3}},
               num_samples=8, max_concurrent=2, storage=str(tmp_path / "runs"))
    res = run(exp)
    study = optuna.load_study(study_name="s", storage=db)
    states = [t.state for t in study.trials]
    df = res.dataframe
    n_pruned = int((df["status"] == "pruned").sum())
    assert n_pruned >= 1
    assert states.count(optuna.trial.TrialState.PRUNED) == n_pruned
    n_completed = int((df["status"] == "completed").sum())
    assert states.count(optuna.trial.TrialState.COMPLETE) == n_completed
    for t in study.trials:
        if t.state == optuna.trial.TrialState.PRUNED:
            assert t.intermediate_values and max(t.intermediate_values) < 4
            assert t.value == pytest.approx(t.intermediate_values[max(t.intermediate_values)])


def test_median_stopping_end_to_end(ray_session, tmp_path):
    """Trials whose curve falls below the median of the others are stopped before max_epochs;
    the rest run to the end (one trial at a time, so the comparison is deterministic; seed 7
    draws two good configurations first, then worse ones)."""
    from orchestrator import run

    exp = _exp(searcher={"type": "random", "seed": 7},
               scheduler={"type": "median", "options": {"grace_period": 1,
                                                          "min_samples_required": 2}},
               num_samples=8, max_concurrent=1, max_epochs=4, data={"sleep": 0.5},
               storage=str(tmp_path / "runs"))
    df = run(exp).dataframe
    stopped = df[df["status"] == "pruned"]
    assert len(stopped) >= 1 and (stopped["epochs"] < 4).all()
    completed = df[df["status"] == "completed"]
    assert len(completed) >= 2 and (completed["epochs"] == 4).all()
    assert completed["val_acc"].max() > stopped["val_acc"].max()


def test_random_duplicates_are_not_trained_twice(ray_session, tmp_path):
    from orchestrator import run

    exp = _exp(space=DISCRETE_SPACE, num_samples=10, max_concurrent=2,
               storage=str(tmp_path / "runs"))
    res = run(exp)
    df = res.dataframe
    assert len(df) == 10
    trained = df[df["status"] != "duplicate"]
    cfg_cols = [c for c in df.columns if c.startswith("config/")]
    assert not trained.duplicated(cfg_cols).any()
    dups = df[df["status"] == "duplicate"]
    assert len(dups) == 10 - len(trained) >= 4
    for _, row in dups.iterrows():  # reported the original's result
        orig = trained[(trained[cfg_cols] == row[cfg_cols]).all(axis=1)]
        assert row["val_acc"] == pytest.approx(float(orig["val_acc"].iloc[0]))


def test_grid_runs_every_config(ray_session, tmp_path):
    from orchestrator import run

    res = run(_exp(space=DISCRETE_SPACE, searcher={"type": "grid"}, max_epochs=2,
                   max_concurrent=2, storage=str(tmp_path / "runs")))
    assert len(res.dataframe) == 6 and set(res.dataframe["status"]) == {"completed"}
    assert res.best_config == {"a": 3, "b": "v"}


def test_tpe_searcher_state_round_trip(tmp_path):
    space = load_space(TOY_SPACE)
    exp = _exp(searcher={"type": "tpe", "seed": 0, "n_startup_trials": 2})
    s = make_searcher(exp, space)
    for i in range(3):
        cfg = s.suggest(f"t{i}")
        space.validate(cfg)
        s.on_trial_complete(f"t{i}", {"val_acc": 0.1 * i, "epoch": 4, "training_iteration": 4})
    path = str(tmp_path / "tpe.pkl")
    s.save(path)  # the define-by-run closure must survive
    s2 = make_searcher(exp, space)
    s2.restore(path)
    assert len(s2._ot_study.trials) == 3
    space.validate(s2.suggest("t3"))


PB2_SPACE = {
    "name": "pb2",
    "parameters": {
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "batch": {"type": "int", "low": 8, "high": 64, "step": 8},
        "wd": {"type": "ordinal", "sequence": [0.0, 1e-4, 1e-2]},
        "mix": {"type": "categorical", "choices": [0.0, 0.5, 2.0]},
        "opt": {"type": "categorical", "choices": ["sgd", "adam"]},
        "amp": {"type": "categorical", "choices": [False, True]},
    },
}


def test_pb2_scheduler_bounds_and_snapped_proposals():
    from ray.tune.schedulers.pb2 import PB2

    space = load_space(PB2_SPACE)
    exp = _exp(space=PB2_SPACE, scheduler={"type": "pb2", "options": {"perturbation_interval": 1}})
    exp.validate()
    pb2 = make_scheduler(exp, space)
    assert isinstance(pb2, PB2)
    import math

    import numpy as np

    from orchestrator.pbt import into_space

    # lr is log-scale: PB2 models it as ln(lr) on [ln(low), ln(high)]
    assert pb2._hyperparam_bounds == {"lr": [math.log(1e-4), math.log(1e-1)], "batch": [8, 64],
                                      "wd": [0.0, 1e-2], "mix": [0.0, 2.0]}  # not opt / amp
    assert pb2.from_search(pb2.to_search({"lr": 1e-3}))["lr"] == pytest.approx(1e-3)
    # a raw PB2 proposal is snapped onto the space before it becomes a trial's config
    proposal = {"lr": np.float64(0.7), "batch": 29.6, "wd": 0.004, "mix": 1.4, "opt": "adam",
                "amp": True}
    snapped = into_space(space, dict(proposal), np.random.default_rng(0))
    assert snapped == {"lr": 0.1, "batch": 32, "wd": 1e-4, "mix": 2.0, "opt": "adam", "amp": True}
    assert type(snapped["lr"]) is float and type(snapped["batch"]) is int
    space.validate(snapped)
    assert into_space(space, {**snapped, "batch": 200.0, "lr": 1e-3},
                      np.random.default_rng(0))["batch"] == 64


def test_pb2_spec_checks():
    from orchestrator.errors import SpecError

    with pytest.raises(SpecError, match=r"scheduler\.options\.burn_in_period.*perturbation_interval"):
        _exp(scheduler={"type": "pb2", "options": {"burn_in_period": 2}})
    no_numbers = {"name": "cat", "parameters": {
        "opt": {"type": "categorical", "choices": ["sgd", "adam"]}}}
    with pytest.raises(SpecError, match="numeric.*use 'pbt'"):
        _exp(space=no_numbers, scheduler={"type": "pb2"}).validate()


def _hide(monkeypatch, hidden: str) -> None:
    """Make ``importlib.util.find_spec`` report ``hidden`` as not installed."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == hidden else real(name, *a))


def test_pb2_needs_only_what_rays_pb2_imports(monkeypatch):
    """Ray 2.60's PB2 fits its GP with scikit-learn: a missing GPy must not block it, and
    make_scheduler then builds Ray's PB2."""
    from ray.tune.schedulers.pb2 import PB2

    _hide(monkeypatch, "GPy")
    exp = _exp(scheduler={"type": "pb2"})
    assert exp.validate() is exp
    pb2 = make_scheduler(exp, exp.load_space())
    assert isinstance(pb2, PB2)


def test_pb2_refused_up_front_when_scikit_learn_is_missing(monkeypatch):
    from orchestrator.errors import SpecError

    _hide(monkeypatch, "sklearn")
    with pytest.raises(SpecError, match=r"key 'scheduler.type': Ray's PB2 needs the scikit-learn "
                                        r"package \(pip install scikit-learn\)"):
        _exp(scheduler={"type": "pb2"})
