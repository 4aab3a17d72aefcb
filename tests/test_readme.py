"""README.md tells the truth: its Python blocks run as written (the experiment's budgets
shrunk through ``Experiment.replace``), its experiment-file block is examples/quickstart.yaml,
and its space-file block loads."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator import runner
from spaces.formats import load_space

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w+)\n(.*?)^```", README, flags=re.S | re.M)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
YAML = [code for lang, code in BLOCKS if lang == "yaml"]


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """Run a block from an empty folder that sees the repository's examples/."""
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_has_the_blocks_this_test_checks():
    assert len(PYTHON) == 2 and len(YAML) == 2


@pytest.mark.slow
def test_python_api_block_runs(ray_session, in_tmp, monkeypatch, capsys):
    real_run = runner.run
    ran = []

    def small_run(exp, *args, **kwargs):
        exp = exp.replace(num_samples=2, max_epochs=1, max_concurrent=2,
                          storage=str(in_tmp / "runs"),
                          data={**exp.data, "image_size": 16, "data_fraction": 0.3})
        ran.append(exp)
        return real_run(exp, *args, **kwargs)

    monkeypatch.setattr(runner, "run", small_run)
    exec(compile(PYTHON[0], "README.md (Python API)", "exec"), {})
    assert [e.name for e in ran] == ["quickstart"]
    out = capsys.readouterr().out
    assert "trial_id" in out and "val_acc" in out


@pytest.mark.slow
def test_spaces_and_trainers_block_runs(in_tmp, monkeypatch, capsys):
    import trainers.local

    real_run_local = trainers.local.run_local
    ran = []

    def small_run_local(config, run_dir, **kwargs):
        ran.append(dict(config))
        kwargs["max_epochs"] = 1
        return real_run_local({**config, "data_fraction": 0.25}, run_dir, **kwargs)

    monkeypatch.setattr(trainers.local, "run_local", small_run_local)
    exec(compile(PYTHON[1], "README.md (spaces and trainers)", "exec"), {})
    size, config_id = capsys.readouterr().out.split()[:2]
    assert float(size) > 1e9 and len(config_id) == 40
    assert ran and ran[0]["model"] == "test_resnet" and ran[0]["cotuning-reg"] == 0.0
    metrics = (in_tmp / "runs" / "one" / "metrics.csv").read_text().splitlines()
    assert len(metrics) == 1 + 1  # header and the one epoch


def test_experiment_file_block_is_the_quickstart_file():
    block = next(code for code in YAML if "\ntrainer:" in code)
    assert block == (ROOT / "examples" / "quickstart.yaml").read_text()


def test_space_file_block_loads():
    block = next(code for code in YAML if "parameters:" in code)
    space = load_space(__import__("yaml").safe_load(block))
    assert space.name == "my-space" and set(space.params) == {"lr", "opt", "momentum", "layers"}
    space.validate({"lr": 1e-3, "opt": "momentum", "momentum": 0.9, "layers": 3})
