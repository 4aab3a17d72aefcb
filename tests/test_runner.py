"""run(): the Tuner wiring, Results, files written, PBT exploiting, HyperBand, resources."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from orchestrator import Experiment, Results, run
from orchestrator.errors import SpecError
from trainers_for_tests import TOY_SPACE


def _exp(tmp_path, **kw):
    d = dict(name="r", space=TOY_SPACE, trainer="trainers_for_tests:curve",
             searcher={"type": "random", "seed": 0}, num_samples=3, max_epochs=3,
             max_concurrent=2, storage=str(tmp_path / "runs"))
    d.update(kw)
    return Experiment.from_dict(d)


def test_run_returns_results_and_writes_files(ray_session, tmp_path):
    exp = _exp(tmp_path, fixed={"opt": "b"}, data={"sleep": 0.0})
    res = run(exp)
    assert isinstance(res, Results)
    path = Path(res.path)
    assert path == tmp_path / "runs" / "r"
    df = res.dataframe
    assert len(df) == 3 and set(df["status"]) == {"completed"}
    assert {"trial_id", "status", "retries", "epochs", "val_acc", "config/x",
            "config/opt", "config/momentum"} <= set(df.columns)
    assert (df["config/opt"] == "b").all() and (df["epochs"] == 3).all()
    assert res.best_metric == pytest.approx(df["val_acc"].max())
    assert res.best_config["opt"] == "b" and "x" in res.best_config
    assert "sleep" not in res.best_config  # run settings are not part of the config
    # files: spec for resume, results table, best, tensorboard
    assert Experiment.from_yaml(path / "experiment.yaml") == exp.replace(
        storage=exp.storage_root())
    assert len(pd.read_csv(path / "results.csv")) == 3
    best = json.loads((path / "best.json").read_text())
    assert best["best_metric"] == pytest.approx(res.best_metric)
    assert (path / "tensorboard").is_dir()
    loaded = Results.load(path)
    assert loaded.best_config == res.best_config
    # the same experiment folder is never silently reused
    with pytest.raises(SpecError, match="resume"):
        run(exp)


def test_trials_get_data_settings_seed_and_resources(ray_session, tmp_path):
    seen = tmp_path / "seen.jsonl"
    exp = _exp(tmp_path, trainer="trainers_for_tests:record_trainer",
               data={"record_to": str(seen), "dataset": "digits"},
               resources={"cpu": 1}, num_samples=2, max_epochs=1)
    run(exp)
    rows = [json.loads(x) for x in seen.read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r["dataset"] == "digits" and r["max_epochs"] == 1 and r["num_cpus"] == 1
        assert Path(r["trial_dir"]).is_dir() and isinstance(r["seed"], int)
        assert ("momentum" in r["keys"]) == (r["opt"] == "b")
    assert len({r["trial_dir"] for r in rows}) == 2  # each trial its own folder


def test_pbt_exploits_another_trials_checkpoint(ray_session, tmp_path):
    # synch PBT: every interval the bottom half copies a top-half trial's checkpoint
    exp = _exp(tmp_path, name="pbt", num_samples=4, max_epochs=4, max_concurrent=4,
               resources={"cpu": 0.5}, data={"sleep": 0.1}, fixed={"opt": "a"},
               scheduler={"type": "pbt", "options": {"perturbation_interval": 1,
                                                     "quantile_fraction": 0.5, "synch": True}})
    res = run(exp)
    path = Path(res.path)
    restores = [json.loads(line) for f in path.glob("trial_*/restores.jsonl")
                for line in f.read_text().splitlines()]
    exploited = [r for r in restores if r["from"] != r["me"]]
    assert exploited, f"no PBT exploit observed: {restores}"
    df = res.dataframe
    assert len(df) == 4 and df["trial_id"].is_unique
    assert (df["epochs"] == 4).all()
    # PBT samples the space through Tune domains: inactive values never reach the table
    from spaces.compile.tune import INACTIVE

    config_cols = [c for c in df.columns if c.startswith("config/")]
    assert not df[config_cols].isin([INACTIVE]).any().any()
    assert "config/momentum" not in df.columns or df["config/momentum"].isna().all()


def test_hyperband_pauses_and_resumes_from_checkpoints(ray_session, tmp_path):
    """max_t=4, eta=2: brackets of 3 (r0=4), 3 (r0=2) and 4 (r0=1) trials, all ten proposed at
    once (4 run at a time). In the 4-trial bracket the first three to reach epoch 1 pause; the
    fourth triggers the halving, whose two winners include a paused trial: it resumes from its
    own checkpoint. The losers of a rung stop early."""
    res = run(_exp(tmp_path, name="hb", num_samples=10, max_epochs=4, data={"sleep": 0.05},
                   max_concurrent=10, resources={"cpu": 0.5},
                   scheduler={"type": "hyperband", "options": {"reduction_factor": 2}}))
    df = res.dataframe
    assert len(df) == 10 and set(df["status"]) <= {"completed", "pruned"}
    assert (df.loc[df["status"] == "completed", "epochs"] == 4).all()
    assert (df.loc[df["status"] == "pruned", "epochs"] < 4).sum() >= 1, df[["status", "epochs"]]
    restores = [json.loads(line) for f in Path(res.path).glob("trial_*/restores.jsonl")
                for line in f.read_text().splitlines()]
    assert restores and all(r["from"] == r["me"] for r in restores), restores
    epochs = dict(zip(df["trial_id"], df["epochs"]))
    assert all(r["epoch"] < epochs[r["me"]] for r in restores)  # went on after the pause


def test_diverged_trials_are_marked_and_never_best(ray_session, tmp_path):
    res = run(_exp(tmp_path, name="div", num_samples=2, data={"diverge_at": 2}))
    df = res.dataframe
    assert set(df["status"]) == {"diverged"} and (df["val_loss"] == 1e9).all()
    assert res.best_metric is None


def test_pb2_runs_and_trainers_see_values_of_the_space(ray_session, tmp_path):
    """PB2 explores continuous bounds ([min, max] for numeric ordinals); every proposal is
    snapped to an allowed value of the space before a trainer (or the results table) sees it."""
    seen = tmp_path / "seen.jsonl"
    exp = _exp(tmp_path, name="pb2", trainer="trainers_for_tests:curve_recording",
               num_samples=2, max_epochs=3, max_concurrent=2, resources={"cpu": 0.5},
               data={"record_to": str(seen)},
               scheduler={"type": "pb2", "options": {"perturbation_interval": 1,
                                                     "quantile_fraction": 0.5, "synch": True}})
    res = run(exp)
    df = res.dataframe
    assert len(df) == 2 and set(df["status"]) == {"completed"} and (df["epochs"] == 3).all()
    path = Path(res.path)
    restores = [json.loads(line) for f in path.glob("trial_*/restores.jsonl")
                for line in f.read_text().splitlines()]
    assert [r for r in restores if r["from"] != r["me"]], f"no PB2 exploit observed: {restores}"
    rows = [json.loads(x) for x in seen.read_text().splitlines()]
    assert len(rows) > 2  # the initial trials plus the exploited restarts
    for r in rows + [res.best_config] + df.filter(like="config/").rename(
            columns=lambda c: c[len("config/"):]).to_dict("records"):
        assert r["depth"] in (1, 2, 3) and isinstance(r["depth"], int), r
        assert 0.0 <= r["x"] <= 1.0 and 1e-4 <= r["lr"] <= 1e-1, r


def test_pbt_honours_max_concurrent(ray_session, tmp_path):
    """Resources would allow 4 trials at once (0.5 CPU each on 2 CPUs); max_concurrent=1 runs
    them one after another (each trial's checkpoint times never overlap another's)."""
    res = run(_exp(tmp_path, name="pbtc", num_samples=3, max_epochs=2, max_concurrent=1,
                   resources={"cpu": 0.5}, data={"sleep": 0.3},
                   scheduler={"type": "pbt", "options": {"perturbation_interval": 1}}))
    spans = []
    for d in Path(res.path).glob("trial_*"):
        times = [f.stat().st_mtime for f in d.glob("checkpoint_*/state.json")]
        assert times, d
        spans.append((min(times), max(times)))
    spans.sort()
    assert len(spans) == 3
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), spans


def test_grid_without_max_concurrent_runs_every_configuration(ray_session, tmp_path):
    """Without ``max_concurrent`` the searcher is wrapped in the growing limiter; grid search
    still runs each distinct configuration exactly once."""
    space = {"name": "grid", "parameters": {"depth": {"type": "ordinal", "sequence": [1, 2, 3]}}}
    res = run(_exp(tmp_path, name="grid", space=space, searcher={"type": "grid"},
                   num_samples=1, max_epochs=1, max_concurrent=None))
    df = res.dataframe
    assert len(df) == 3 and set(df["status"]) == {"completed"}
    assert sorted(df["config/depth"]) == [1, 2, 3]


def test_results_table_keeps_chosen_values_that_look_missing(tmp_path):
    """A categorical may choose "nan", "None" or "NA": the table read back keeps them as
    strings; only empty cells (a metric never reported) are missing."""
    df = pd.DataFrame({"trial_id": ["a", "b", "c"], "status": ["completed"] * 3,
                       "config/fault": ["nan", "None", "NA"], "val_acc": [0.5, None, 0.7]})
    Results(best_config={"fault": "nan"}, best_metric=0.7, dataframe=df,
            path=str(tmp_path), metric="val_acc", mode="max", best_trial="c").save()
    back = Results.load(tmp_path).dataframe
    assert list(back["config/fault"]) == ["nan", "None", "NA"]
    assert back["val_acc"].isna().tolist() == [False, True, False]
