"""The replay trainer serves recorded curves, answers unknown configurations by 1-NN and
replays failures."""
from __future__ import annotations

import gzip
import json
import time

import numpy as np
import pytest

from spaces.library.registry import SPACES
from trainers import get_trainer
from trainers.api import LocalContext
from trainers.errors import TrainerError
from trainers.replay import ReplayedFailure, ReplayTable, open_table

FIXED = {"cotuning-reg": 0.0, "amp": False}


def synthetic_table(path, n: int = 60, seed: int = 0, epochs: int = 6,
                    failing_model: str = "test_convnext", task: str = "synthetic") -> dict:
    """A recorded-table stand-in: accuracy rises with lr up to 1e-3 and is best for adamw;
    every ``failing_model`` configuration crashed after 0.5 s; epoch cost grows with model."""
    space = SPACES.create("quicktune_cpu").with_fixed(FIXED)
    rng = np.random.default_rng(seed)
    lrs = space["lr"].sequence
    rows = []
    for cfg in space.sample(rng, n=n):
        cfg = space.canonical(cfg)
        if cfg["model"] == failing_model:
            rows.append({"config": cfg, "val_acc": [], "epoch_s": [], "diverged": 0,
                         "cost_s": 0.5, "error": "RuntimeError: kernel larger than input"})
            continue
        quality = 1.0 - abs(lrs.index(cfg["lr"]) - 4) / 5 + (0.3 if cfg["opt"] == "adamw" else 0)
        final = float(np.clip(0.1 + 0.6 * quality / 1.3, 0, 1))
        curve = [round(final * (1 - 0.6 ** (e + 1)), 4) for e in range(epochs)]
        cost = 1.0 + space["model"].choices.index(cfg["model"]) * 0.5
        rows.append({"config": cfg, "val_acc": curve, "epoch_s": [cost] * epochs,
                     "diverged": 0, "cost_s": cost * epochs, "error": None})
    table = {"task": task, "space": "quicktune_cpu", "fixed": FIXED, "max_epochs": epochs,
             "metric": "val_acc", "mode": "max", "rows": rows}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return table


@pytest.fixture()
def table_path(tmp_path):
    path = tmp_path / "synthetic.json.gz"
    synthetic_table(path)
    return path


def _run(config, path, tmp_path, **extra):
    ctx = LocalContext(tmp_path / "trial", max_epochs=6, echo=False, tensorboard=False)
    get_trainer("replay")({**config, "replay_table": str(path), "dataset": "digits", **extra},
                          ctx)
    return ctx.results


def test_recorded_configuration_gets_its_own_curve(table_path, tmp_path):
    table = open_table(str(table_path))
    row = next(r for r in table.rows if not r["error"])
    results = _run(row["config"], table_path, tmp_path)
    assert [r["val_acc"] for r in results] == row["val_acc"]
    assert [r["epoch_time_s"] for r in results] == row["epoch_s"]
    assert all(r["replay_nn"] == 0 for r in results)


def test_unknown_configuration_answered_by_nearest_neighbour(table_path, tmp_path):
    table = ReplayTable(json.load(gzip.open(table_path, "rt")))
    row = next(r for r in table.rows if not r["error"] and r["config"]["opt"] != "sgd")
    near = dict(row["config"])
    near["drop"] = 0.4 if near["drop"] != 0.4 else 0.3  # one knob away from a recorded row
    index, nn = table.lookup(near)
    assert nn and table.rows[index]["config"] == row["config"]
    results = _run(near, table_path, tmp_path)
    assert all(r["replay_nn"] == 1 for r in results)
    assert [r["val_acc"] for r in results] == row["val_acc"]


def test_recorded_failure_is_replayed(table_path, tmp_path):
    table = open_table(str(table_path))
    row = next(r for r in table.rows if r["error"])
    with pytest.raises(ReplayedFailure, match="kernel larger than input"):
        _run(row["config"], table_path, tmp_path)


def test_scaled_sleeps_and_ledger(table_path, tmp_path):
    table = open_table(str(table_path))
    row = next(r for r in table.rows if not r["error"])
    ledger = tmp_path / "ledger.jsonl"
    t0 = time.perf_counter()
    _run(row["config"], table_path, tmp_path, replay_time_scale=0.01, replay_ledger=str(ledger))
    assert time.perf_counter() - t0 >= 0.01 * sum(row["epoch_s"])
    lines = [json.loads(x) for x in ledger.read_text().splitlines()]
    assert [x["cost"] for x in lines] == row["epoch_s"]


def test_missing_table_and_bad_scale_are_clear_errors(table_path, tmp_path):
    with pytest.raises(TrainerError, match="replay_table"):
        _run({"model": "resnet10t"}, tmp_path / "nope.json.gz", tmp_path)
    with pytest.raises(TrainerError, match="replay_time_scale"):
        _run({"model": "resnet10t"}, table_path, tmp_path, replay_time_scale=-1)
