"""A fast smoke version of the search-quality benchmark (bench/search_quality.py): 2 seeds, small
budgets, on a recorded table and on synthetic ones."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from test_replay import synthetic_table

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sq():
    spec = importlib.util.spec_from_file_location("search_quality",
                                                  ROOT / "bench" / "search_quality.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tables(sq):
    found = sq.load_tables(sorted((ROOT / "bench" / "data").glob("*.json.gz")))
    return {k: t for k, t in found.items() if t.table.get("space") == "quicktune_cpu"}


def test_recorded_tables_meet_the_issue(tables):
    """At least 300 configurations each, curves of at least 12 epochs, failures (if any: the
    current trainer runs every configuration of these tables) with a cost."""
    assert {"digits", "digits_transfer", "photo_crops"} <= set(tables)
    for task, t in tables.items():
        assert len(t.rows) >= 300, task
        assert t.max_epochs >= 12
        ok = [r for r in t.rows if not r.get("error")]
        assert all(len(r["val_acc"]) == t.max_epochs == len(r["epoch_s"]) for r in ok
                   if not r.get("diverged"))
        failed = [r for r in t.rows if r.get("error")]
        assert all(r["cost_s"] >= 0 and r["error"].strip() for r in failed)


SMOKE = ["default recipe", "random+fifo", "optuna tpe+sh (standalone)", "ray OptunaSearch+ASHA",
         "syne-tune ASHA (simulator)", "archtune quick+fifo"]


@pytest.mark.slow
def test_smoke_benchmark_two_seeds(sq, tables, tmp_path):
    budgets = [1, 2]
    res = sq.evaluate(tables, SMOKE, seeds=2, budgets=budgets, tasks=["digits"],
                      log=lambda line: None)
    r = res["digits"]
    assert set(r["methods"]) == set(SMOKE)
    for name, m in r["methods"].items():
        regret = np.asarray(m["regret"])
        assert regret.shape == (len(budgets), 2), name
        assert ((regret >= 0) & (regret <= 1)).all(), name
        assert (np.diff(regret, axis=0) <= 1e-12).all(), f"{name}: regret rose with budget"
        assert m["trials"] >= 1
    # the recipe alone: its own row of the table, one full training = one budget unit
    table = tables["digits"]
    row, nn = table.lookup(sq._fit(table.space, __import__(
        "orchestrator.quick.portfolio", fromlist=["x"]).DEFAULT_RECIPE))
    assert not nn
    expected = (r["y_best"] - max(table.curve(row)[0])) / (r["y_best"] - r["y_worst"])
    assert np.allclose(r["methods"]["default recipe"]["regret"][1], expected)
    assert math.isclose(r["unit_s"], sum(table.curve(row)[1]))
    # random search draws with other seeds than the recording: the 1-NN lookup answers
    assert r["methods"]["random+fifo"]["nn"] > 0
    md = sq.table_markdown(res, budgets, 2)
    assert all(f"| {name} |" in md for name in SMOKE)
    paths = sq.plot(res, budgets, tmp_path)
    assert [p.name for p in paths] == ["regret_digits.png"] and paths[0].stat().st_size > 1000


def test_asha_in_the_simulator_stops_trials_early(sq, tmp_path):
    """The discrete-event simulator delivers results so that Ray's ASHA really cuts trials."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from spaces.compile.optuna import to_optuna
    from trainers.replay import ReplayTable

    table = ReplayTable(synthetic_table(tmp_path / "s.json.gz", n=60, epochs=6))
    stopped = []

    class Spy(ASHAScheduler):
        def on_trial_complete(self, tune_controller, trial, result):
            stopped.append(result["epoch"])
            return super().on_trial_complete(tune_controller, trial, result)

    searcher = OptunaSearch(space=to_optuna(table.space), metric="val_acc", mode="max", seed=3)
    sched = Spy(metric="val_acc", mode="max", max_t=6, grace_period=1, reduction_factor=3)
    trace = sq.simulate(table, searcher, sched, budget_s=200.0, workers=2)
    assert trace.used >= 200.0 and trace.trials > 10
    assert min(stopped) < 6 and max(stopped) == 6


def test_portfolio_is_leave_one_task_out(tmp_path):
    """A task's ``quick`` portfolio never takes a configuration only its own table holds."""
    from orchestrator.quick.portfolio import best_across_tables

    a = synthetic_table(tmp_path / "a.json.gz", n=40, seed=1, task="a")
    b = synthetic_table(tmp_path / "b.json.gz", n=40, seed=2, task="b")
    best_a = max(a["rows"], key=lambda r: max(r["val_acc"] or [-1]))["config"]
    assert best_a in best_across_tables([a, b], k=4)
    picked = best_across_tables([a, b], k=4, exclude_task="a")
    own = {repr(sorted(r["config"].items())) for r in b["rows"]}
    assert picked and all(repr(sorted(c.items())) in own for c in picked)
