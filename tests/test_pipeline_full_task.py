"""A proxy candidate that is the full task reuses the reference trainings."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from trainers_for_tests import NAS_TOY_SPACE

from orchestrator.pipeline import is_full_task, run_pipeline


@pytest.mark.parametrize(("settings", "data", "expected"), [
    ({"data_fraction": 1.0, "epochs": 4}, {"image_size": 16}, True),
    ({"epochs": 4}, {}, True),
    ({"data_fraction": 1.0}, {}, True),                       # epochs default: the full length
    ({"image_size": 16, "epochs": 4}, {"image_size": 16}, True),
    ({"data_fraction": 1.0, "epochs": 3}, {}, False),         # shorter schedule
    ({"data_fraction": 0.5, "epochs": 4}, {}, False),
    ({"data_fraction": 1.0, "epochs": 4}, {"data_fraction": 0.5}, False),
    ({"image_size": 8, "epochs": 4}, {"image_size": 16}, False),
    ({"width_scale": 1.0, "epochs": 4}, {}, False),           # a default it cannot know
])
def test_is_full_task(settings, data, expected):
    assert is_full_task(settings, data, 4) is expected


@pytest.mark.timeout(240)
def test_full_task_candidate_is_not_trained_again(ray_session, tmp_path):
    calls = tmp_path / "calls.jsonl"
    summary = run_pipeline({
        "name": "full", "space": NAS_TOY_SPACE, "trainer": "tests.trainers_for_tests:nas_like",
        "data": {"image_size": 16, "record_to": str(calls)}, "max_epochs": 3,
        "storage": str(tmp_path / "runs"), "max_concurrent": 2, "stages": ["proxy", "search"],
        "proxy": {"num_models": 6, "min_valid": 5, "target_tau": 0.65,
                  "candidates": [{"data_fraction": 0.25, "width_scale": 0.5, "epochs": 3},
                                 {"data_fraction": 1.0, "epochs": 3}]},
        "search": {"num_samples": 2, "searcher": {"type": "random", "seed": 0}},
    })
    proxy = json.loads((Path(summary["path"]) / "pipeline.json").read_text())["stages"]["proxy"]
    full = next(r for r in proxy["candidates"] if r["settings"]["data_fraction"] == 1.0)
    assert full["path"] == proxy["reference"]["path"]
    trained = [Path(json.loads(x)["trial_dir"]).parent.name for x in calls.read_text().splitlines()]
    assert trained.count("reference") == 6
    assert len([n for n in trained if n.startswith("proxy_")]) == 6   # the cheap candidate only
    row = next(r for r in proxy["choice"]["table"] if r["settings"]["data_fraction"] == 1.0)
    assert row["taus"][-1] == pytest.approx(1.0)
