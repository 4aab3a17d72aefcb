"""The ``archtune`` command: space show, train (real finetune, tiny), run + report,
tensorboard, error exit codes, and one end-to-end run with the real fine-tuner on digits."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from orchestrator.cli import main
from trainers_for_tests import DISCRETE_SPACE, TOY_SPACE

REPO = Path(__file__).resolve().parents[1]


def test_space_show_library_and_file(capsys, tmp_path):
    assert main(["space", "show", "quicktune_cpu"]) == 0
    out = capsys.readouterr().out
    assert "pct-to-freeze" in out and "lr" in out
    f = tmp_path / "space.yaml"
    f.write_text(yaml.safe_dump(DISCRETE_SPACE))
    assert main(["space", "show", str(f)]) == 0
    assert "disc" in capsys.readouterr().out


def test_invalid_spec_exits_2_naming_file_and_key(capsys, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"name": "x", "space": "quicktune_cpu", "serch": {}}))
    assert main(["run", str(f)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml" in err and "serch" in err and "searcher" in err
    assert main(["resume", str(tmp_path)]) == 2
    assert "experiment.yaml" in capsys.readouterr().err


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--help"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for cmd in ("run", "resume", "submit", "status", "logs", "stop", "space", "train",
                "report", "tensorboard"):
        assert cmd in out.stdout


def test_train_real_finetune_one_tiny_epoch(capsys, tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": "test_resnet", "dataset": "digits",
                                   "image_size": 16, "data_fraction": 0.3, "pretrained": False,
                                   "batch-size": 32, "lr": 0.005, "opt": "adamw",
                                   "num_workers": 0}))
    out_dir = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--epochs", "1", "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert '"epoch": 1' in out and "val_acc" in out
    assert (out_dir / "metrics.csv").is_file()


def test_run_report_and_tensorboard(ray_session, capsys, tmp_path):
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(dict(
        name="cli", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 0}, num_samples=4, max_epochs=2, max_concurrent=2,
        storage=str(tmp_path / "runs"))))
    assert main(["run", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "best val_acc" in out and "results.csv" in out
    exp_dir = tmp_path / "runs" / "cli"
    assert main(["report", str(exp_dir)]) == 0
    out = capsys.readouterr().out
    assert "trial_id" in out and "best val_acc" in out
    report = exp_dir / "report"
    assert (report / "best_so_far.png").stat().st_size > 1000
    params = list(report.glob("param_*.png"))
    assert params and all(p.stat().st_size > 1000 for p in params)
    assert main(["tensorboard", str(exp_dir), "--dry-run", "--port", "6123"]) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:6123" in out and str(exp_dir / "tensorboard") in out


@pytest.mark.slow
def test_end_to_end_real_finetune_on_digits(ray_session, capsys, tmp_path):
    spec = tmp_path / "e2e.yaml"
    spec.write_text(yaml.safe_dump(dict(
        name="e2e", space="quicktune_cpu", trainer="finetune",
        fixed={"model": "test_resnet", "cotuning-reg": 0.0, "amp": False, "opt": "adamw",
               "lr": 0.005, "batch-size": 32, "data-augmentation": "none",
               "linear-probing": False, "pct-to-freeze": 0.0, "stoch-norm": False},
        data={"dataset": "digits", "image_size": 16, "data_fraction": 0.5, "pretrained": False,
              "num_workers": 0},
        searcher={"type": "tpe", "seed": 0, "n_startup_trials": 2},
        scheduler={"type": "asha", "options": {"grace_period": 1, "reduction_factor": 2}},
        num_samples=2, max_epochs=2, max_concurrent=2, storage=str(tmp_path / "runs"))))
    assert main(["run", str(spec)]) == 0
    from orchestrator import Results

    res = Results.load(tmp_path / "runs" / "e2e")
    assert len(res.dataframe) == 2
    assert res.best_metric is not None and res.best_metric > 0.1  # clearly above chance
    assert res.best_config["model"] == "test_resnet"
