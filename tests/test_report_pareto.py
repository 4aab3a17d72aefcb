"""`archtune report` surfaces the accuracy/latency Pareto front of an architecture search."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.report import make_report, parse_objectives
from spaces.errors import ArchtuneError


@pytest.fixture()
def nas_experiment(tmp_path):
    rows = [  # (val_acc, latency_ms): a, c, e are non-dominated; b is dominated by a; d errored
        ("a", "completed", 0.90, 10.0, 1e6),
        ("b", "completed", 0.85, 12.0, 2e6),
        ("c", "pruned", 0.70, 4.0, 5e5),
        ("d", "errored", 0.99, 1.0, 1e5),
        ("e", "completed", 0.95, 30.0, 3e6),
    ]
    df = pd.DataFrame([{"trial_id": t, "status": s, "val_acc": acc, "latency_ms": lat,
                        "params": p, "config/blocks.0.op": "mbconv"} for t, s, acc, lat, p in rows])
    df.to_csv(tmp_path / "results.csv", index=False)
    (tmp_path / "best.json").write_text(json.dumps({
        "metric": "val_acc", "mode": "max", "best_metric": 0.95, "best_trial": "e",
        "best_config": {"blocks.0.op": "mbconv"}}))
    return tmp_path


def test_default_front_is_metric_vs_latency(nas_experiment):
    rep = make_report(nas_experiment)
    assert sorted(rep["pareto"]["trial_id"]) == ["a", "c", "e"]
    assert (nas_experiment / "report" / "pareto.csv").is_file()
    assert (nas_experiment / "report" / "pareto.png").stat().st_size > 0


def test_explicit_objectives_and_cli(nas_experiment, capsys):
    rep = make_report(nas_experiment, plots=False, pareto=parse_objectives("val_acc:max,params:min"))
    assert sorted(rep["pareto"]["trial_id"]) == ["a", "c", "e"]
    assert main(["report", str(nas_experiment), "--no-plots",
                 "--pareto", "val_acc:max,latency_ms:max"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front (1 trials)" in out and " e " in f" {out} "


def test_bad_objectives_are_named():
    with pytest.raises(ArchtuneError, match="mode must be 'min' or 'max'"):
        parse_objectives("val_acc:up,latency_ms:min")
    with pytest.raises(ArchtuneError, match="at least two objectives"):
        parse_objectives("val_acc:max")
