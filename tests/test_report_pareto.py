"""`archtune report` surfaces the accuracy/latency Pareto front of an architecture search."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.report import make_report, pareto_table, parse_objectives
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


def test_front_keeps_ties_and_skips_missing_values():
    df = pd.DataFrame({"trial_id": list("abcd"), "status": ["completed"] * 4,
                       "val_acc": [0.9, 0.9, float("nan"), 0.5],
                       "latency_ms": [5.0, 5.0, 1.0, 9.0]})
    front = pareto_table(df, [("val_acc", "max"), ("latency_ms", "min")])
    assert list(front["trial_id"]) == ["a", "b"]  # c has no val_acc, d is dominated


def test_pareto_table_does_not_import_torch():
    code = ("import sys, pandas as pd\n"
            "from orchestrator.report import pareto_table\n"
            "df = pd.DataFrame({'trial_id': ['a', 'b'], 'status': ['completed'] * 2,\n"
            "                   'val_acc': [0.9, 0.8], 'latency_ms': [2.0, 1.0]})\n"
            "assert len(pareto_table(df, [('val_acc', 'max'), ('latency_ms', 'min')])) == 2\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "False"
