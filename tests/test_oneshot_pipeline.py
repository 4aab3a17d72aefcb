"""The one-shot pipeline on Ray (orchestrator/oneshot.py): spec validation, and one tiny run
supernet -> subnet_search (Ray tasks reading the supernet checkpoint) -> final (Tune trials),
then a re-run that skips the finished stages; `archtune space show module:factory`."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.errors import SpecError
from orchestrator.pipeline import Pipeline, run_pipeline

FACTORY = "trainers.oneshot.mnasnet:mnasnet_supernet"
ROOT = Path(__file__).resolve().parents[1]


def _spec(tmp_path: Path, **kw) -> dict:
    d = {
        "name": "oneshot",
        "space": FACTORY,
        "trainer": "supernet",
        "data": {"data_fraction": 0.15, "batch_size": 32, "device": "cpu",
                 "bn_recalib_batches": 1,
                 "supernet_args": {"filters": [16, 16], "strides": [1, 2], "head_filters": 32}},
        "max_epochs": 1,
        "storage": str(tmp_path / "runs"),
        "max_concurrent": 2,
        "stages": ["supernet", "subnet_search", "final"],
        "supernet": {"epochs": 1, "settings": {"eval_subnets": 1}},
        "subnet_search": {"evaluations": 8, "population_size": 4, "sample_size": 2,
                          "workers": 2, "batch_size": 4, "constraints": ["params <= 1e6"]},
        "final": {"top_n": 2, "init": "inherit"},
    }
    d.update(kw)
    return d


def test_oneshot_spec_errors_name_the_key(tmp_path):
    with pytest.raises(SpecError, match=r"key 'stages'.*order"):
        Pipeline.from_dict(_spec(tmp_path, stages=["supernet", "final"]))
    with pytest.raises(SpecError, match=r"key 'subnet_search.constraints\[0\]'.*valid: params"):
        Pipeline.from_dict(_spec(tmp_path, subnet_search={"constraints": ["acc <= 3"]}))
    with pytest.raises(SpecError, match=r"key 'final.init'"):
        Pipeline.from_dict(_spec(tmp_path, final={"init": "warm"}))
    with pytest.raises(SpecError, match=r"key 'data'.*unknown one-shot settings 'lrate'"):
        Pipeline.from_dict(_spec(tmp_path, data={"lrate": 0.1}))
    with pytest.raises(SpecError, match=r"key 'space'.*module:factory"):
        Pipeline.from_dict(_spec(tmp_path, space="mnasnet"))
    with pytest.raises(SpecError, match=r"key 'supernet.epoch'.*did you mean 'epochs'"):
        Pipeline.from_dict(_spec(tmp_path, supernet={"epoch": 2}))
    assert Pipeline.from_yaml(ROOT / "examples" / "oneshot_pipeline.yaml").stages == (
        "supernet", "subnet_search", "final")


@pytest.mark.slow
def test_oneshot_pipeline_runs_on_ray_and_skips_finished_stages(tmp_path, ray_session):
    out = run_pipeline(_spec(tmp_path))
    st = out["stages"]
    ckpt = Path(st["supernet"]["checkpoint"])
    assert (ckpt / "state.pt").is_file() and str(ckpt).startswith(str(tmp_path / "runs"))
    search = st["subnet_search"]
    assert search["evaluations"] == 8
    rows = [json.loads(x) for x in Path(search["path"]).read_text().splitlines()]
    assert len(rows) == 8 and all({"val_acc", "params", "flops"} <= set(r) for r in rows)
    assert len(search["top"]) == 2
    final = st["final"]
    assert final["init"] == "inherit" and len(final["models"]) == 2
    assert all(m["score"] is not None for m in final["models"])
    assert out["best"]["from_stage"] == "final"
    again = run_pipeline(_spec(tmp_path))
    assert again["stages"]["final"]["best_metric"] == final["best_metric"]
    assert again["stages"]["supernet"]["checkpoint"] == str(ckpt)


def test_space_show_describes_a_models_mutables():
    r = subprocess.run([sys.executable, "-m", "orchestrator.cli", "space", "show", FACTORY],
                       capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "blocks.0.op" in r.stdout and "blocks.3.expansion" in r.stdout
