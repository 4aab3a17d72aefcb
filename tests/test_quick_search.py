"""archtune's default searcher (``quick``) on the replay trainer and on recorded tables."""
from __future__ import annotations

import pytest
from test_replay import FIXED, synthetic_table

from orchestrator.quick import make_quick
from orchestrator.quick.portfolio import DEFAULT_RECIPE, RECORDED_BEST, family_recipes
from orchestrator.quick.searcher import QuickSearcher
from orchestrator.spec import Experiment, SchedulerSpec
from trainers.replay import open_table


@pytest.fixture()
def table(tmp_path):
    path = tmp_path / "synthetic.json.gz"
    synthetic_table(path, n=80)
    return open_table(str(path)), path


def _exp(path, **kw):
    return Experiment(name="quick", space="quicktune_cpu", fixed=FIXED, trainer="replay",
                      data={"replay_table": str(path)}, max_epochs=6, seed=0, **kw)


def _searcher(table, path, portfolio=None) -> QuickSearcher:
    from orchestrator.quick import make_policy

    exp = _exp(path)
    space = exp.load_space()
    return QuickSearcher(make_policy(exp, space, portfolio=portfolio), metric="val_acc",
                         mode="max")


def _play(searcher, table, tid, cfg, epochs=None):
    """Feed one trial's recorded curve (all of it, or its first ``epochs``) to the searcher;
    every ``test_convnext`` configuration crashes (the synthetic table's failing region)."""
    row, _ = table.lookup(cfg)
    if cfg["model"] == "test_convnext" or table.failure(row):
        searcher.on_trial_complete(tid, None, error=True)
        return
    accs, secs = table.curve(row)
    result = None
    for e, (a, s) in enumerate(zip(accs[:epochs], secs)):
        result = {"val_acc": a, "training_iteration": e + 1, "epoch_time_s": s}
        searcher.on_trial_result(tid, result)
    searcher.on_trial_complete(tid, result)


def test_default_searcher_is_quick(table):
    _, path = table
    exp = _exp(path)
    assert exp.searcher.type == "quick"
    assert isinstance(make_quick(exp, exp.load_space()), QuickSearcher)


def _fitted(space, item):
    cfg = dict(space.default())
    cfg.update({k: v for k, v in item.items() if k in space and space[k].contains(v)})
    return space.canonical(cfg)


def test_warm_start_configurations_come_first(table):
    tab, path = table
    s = _searcher(tab, path)
    space = _exp(path).load_space()
    items = family_recipes(space)[:1] + RECORDED_BEST + family_recipes(space)[1:3]
    expected = list(dict.fromkeys(space.config_id(_fitted(space, r)) for r in items))
    got = [s.suggest(f"t{i}") for i in range(len(expected) + 2)]
    assert got[0]["model"] == DEFAULT_RECIPE["model"] and got[0]["opt"] == "adamw"
    assert got[0]["lr"] == DEFAULT_RECIPE["lr"] and got[0]["data-augmentation"] == "none"
    assert [space.config_id(c) for c in got[:len(expected)]] == expected
    assert s.policy.counts["portfolio"] == len(expected)
    assert not {space.config_id(c) for c in got[len(expected):]} & set(expected)


def test_failing_region_stops_being_proposed(table):
    tab, path = table
    crash = [{**DEFAULT_RECIPE, "model": "test_convnext"},
             {**DEFAULT_RECIPE, "model": "test_convnext", "lr": 1e-4}]
    s = _searcher(tab, path, portfolio=crash)
    for i in range(2):   # the warm start runs the failing model twice: both crash
        cfg = s.suggest(f"w{i}")
        assert cfg["model"] == "test_convnext"
        _play(s, tab, f"w{i}", cfg)
    assert s.policy.counts["excluded"] == 0
    models = []
    for i in range(30):
        cfg = s.suggest(f"t{i}")
        models.append(cfg["model"])
        _play(s, tab, f"t{i}", cfg)
    assert "test_convnext" not in models
    assert s.policy.counts["excluded"] > 0   # it was drawn as a candidate, and filtered out
    assert len(set(models)) >= 3              # the rest of the space is still explored


def test_intermediate_results_change_decisions(table):
    tab, path = table
    a, b = _searcher(tab, path, portfolio=[]), _searcher(tab, path, portfolio=[])
    cfgs = [a.suggest(f"t{i}") for i in range(6)]
    assert cfgs == [b.suggest(f"t{i}") for i in range(6)]
    for i, cfg in enumerate(cfgs):  # both see the same first epoch of every trial ...
        for s in (a, b):
            s.on_trial_result(f"t{i}", {"val_acc": 0.2, "training_iteration": 1})
    # ... then only `a` hears that the two sgd-free trials went on to do well
    for i, cfg in enumerate(cfgs[:3]):
        for e in range(2, 7):
            a.on_trial_result(f"t{i}", {"val_acc": 0.2 + 0.1 * e, "training_iteration": e})
    for i in range(6):
        a.on_trial_complete(f"t{i}", None)
        b.on_trial_complete(f"t{i}", None)
    ma, _ = a.policy.predict(cfgs)
    mb, _ = b.policy.predict(cfgs)
    assert ma[:3].mean() > mb[:3].mean() + 0.1
    assert [a.suggest(f"n{i}") for i in range(3)] != [b.suggest(f"n{i}") for i in range(3)]


def test_state_survives_a_resume(table, tmp_path):
    tab, path = table
    s = _searcher(tab, path)
    for i in range(8):
        cfg = s.suggest(f"t{i}")
        _play(s, tab, f"t{i}", cfg, epochs=2)
    s.save(str(tmp_path / "searcher.pkl"))
    resumed = _searcher(tab, path)
    resumed.restore(str(tmp_path / "searcher.pkl"))
    assert resumed.policy.seen == s.policy.seen
    assert [resumed.suggest(f"r{i}") for i in range(4)] == [s.suggest(f"r{i}") for i in range(4)]


def test_never_invalid_never_duplicate(table):
    tab, path = table
    space = _exp(path).load_space()
    portfolio = [DEFAULT_RECIPE, DEFAULT_RECIPE, {"model": "no-such-model", "lr": 123.0}]
    s = _searcher(tab, path, portfolio=portfolio)
    ids = []
    for i in range(60):
        cfg = s.suggest(f"t{i}")
        assert space.is_valid(cfg), cfg
        ids.append(space.config_id(cfg))
        _play(s, tab, f"t{i}", cfg, epochs=1 + i % 3)
    assert len(ids) == len(set(ids))


def test_no_experimental_warning_reaches_the_user(table):
    """``quick`` uses Optuna's experimental TPE options knowingly; a user sees no warning."""
    import warnings

    import optuna

    tab, path = table
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        s = _searcher(tab, path)
        for i in range(12):
            cfg = s.suggest(f"t{i}")
            _play(s, tab, f"t{i}", cfg)
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]


def test_quick_runs_in_the_real_runner(table, tmp_path, ray_session):
    from orchestrator import run

    _, path = table
    exp = _exp(path, num_samples=6, max_concurrent=2, storage=str(tmp_path / "runs"),
               scheduler=SchedulerSpec(type="asha", options={"grace_period": 1,
                                                             "reduction_factor": 2}))
    res = run(exp)
    df = res.dataframe
    assert len(df) == 6 and res.best_metric is not None
    assert (df["status"] != "duplicate").all()
    first = df.sort_values("trial_id").iloc[0] if "trial_id" in df else df.iloc[0]
    recipe = family_recipes(exp.load_space())[0]   # warm start: the first recipe, fixed values kept
    ran = zip(df["config/opt"], df["config/lr"].astype(float))
    assert (recipe["opt"], recipe["lr"]) in set(ran), first.to_dict()
