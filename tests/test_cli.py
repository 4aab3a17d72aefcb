"""The ``archtune`` command: space show, train (real finetune, tiny), run + report,
tensorboard, error exit codes, and one end-to-end run with the real fine-tuner on digits."""
from __future__ import annotations

import re
import subprocess
import sys
import time
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


def _toy_spec(tmp_path, **kw) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    spec = tmp_path / "exp.yaml"
    spec.write_text(yaml.safe_dump(dict(
        name="cli", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 0}, num_samples=2, max_epochs=2, max_concurrent=2,
        storage=str(tmp_path / "runs"), **kw)))
    return spec


def test_verbose_brings_back_rays_status_output(ray_session, capfd, tmp_path):
    status = re.compile(r"Trial status|== Status ==")
    assert main(["run", str(_toy_spec(tmp_path / "quiet"))]) == 0
    assert not status.search(capfd.readouterr().out)
    assert main(["run", str(_toy_spec(tmp_path / "loud")), "--verbose"]) == 0
    assert status.search(capfd.readouterr().out)


def test_time_budget_stops_starting_trials(ray_session, capsys, tmp_path):
    """100 trials of 3 x 1 s epochs would take minutes; a 6 s budget ends the run early."""
    spec = _toy_spec(tmp_path, time_budget_s=6, data={"sleep": 1.0})
    spec.write_text(spec.read_text().replace("num_samples: 2", "num_samples: 100")
                    .replace("max_epochs: 2", "max_epochs: 3"))
    start = time.monotonic()
    assert main(["run", str(spec)]) == 0
    assert time.monotonic() - start < 60
    from orchestrator import Results

    df = Results.load(tmp_path / "runs" / "cli").dataframe
    assert 1 <= len(df) < 100


def test_pipeline_command_runs_then_skips_finished_stages(ray_session, capsys, tmp_path):
    from trainers_for_tests import NAS_TOY_SPACE

    spec = tmp_path / "pipe.yaml"
    spec.write_text(yaml.safe_dump(dict(
        name="pipe", space=NAS_TOY_SPACE, trainer="tests.trainers_for_tests:nas_like",
        data={"image_size": 16}, max_epochs=2, max_concurrent=2, stages=["search"],
        search={"num_samples": 3, "searcher": {"type": "random", "seed": 0}},
        storage=str(tmp_path / "runs"))))
    assert main(["pipeline", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "search: complete" in out and "best architecture:" in out
    results = next((tmp_path / "runs" / "pipe").rglob("results.csv"))
    first = results.stat().st_mtime_ns
    assert main(["pipeline", str(spec)]) == 0
    assert "search: complete" in capsys.readouterr().out
    assert results.stat().st_mtime_ns == first  # the finished stage was not run again
