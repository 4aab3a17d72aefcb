"""The staged NAS pipeline (orchestrator/pipeline.py): spec validation and one tiny end-to-end
run with a fast NAS-like trainer (proxy -> search -> final -> augment), then a resume."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from trainers_for_tests import NAS_TOY_SPACE

from orchestrator.errors import SpecError
from orchestrator.pipeline import Pipeline, run_pipeline

# The pipeline's replay stages resolve the trainer by name inside Ray workers, which import
# from the driver's working directory (the repository root): name the test module by package.
TRAINER = "tests.trainers_for_tests:nas_like"


def _spec(tmp_path: Path, **kw) -> dict:
    d = {
        "name": "pipe",
        "space": NAS_TOY_SPACE,
        "trainer": TRAINER,
        "data": {"image_size": 16, "record_to": str(tmp_path / "calls.jsonl")},
        "max_epochs": 4,
        "storage": str(tmp_path / "runs"),
        "max_concurrent": 2,
        "proxy": {
            "num_models": 8, "min_valid": 5, "target_tau": 0.65,
            "candidates": [{"data_fraction": 0.25, "width_scale": 0.5, "epochs": 3},
                           {"data_fraction": 0.6, "epochs": 3},
                           {"data_fraction": 1.0, "epochs": 3}],
        },
        "search": {"num_samples": 8, "searcher": {"type": "random", "seed": 1}},
        "final": {"top_n": 2},
        "augment": {"space": {"name": "ra", "parameters": {
            "num_ops": {"type": "ordinal", "sequence": [1, 2]},
            "magnitude": {"type": "ordinal", "sequence": [3, 9]}}}},
    }
    d.update(kw)
    return d


def test_spec_errors_name_the_stage_key(tmp_path):
    with pytest.raises(SpecError, match=r"key 'proxy.num_model'.*did you mean 'num_models'"):
        Pipeline.from_dict(_spec(tmp_path, proxy={"num_model": 3}))
    with pytest.raises(SpecError, match=r"key 'search.searcher.type'"):
        Pipeline.from_dict(_spec(tmp_path, search={"searcher": {"type": "nope"}}))
    with pytest.raises(SpecError, match=r"key 'stages'"):
        Pipeline.from_dict(_spec(tmp_path, stages=["proxy", "final"]))
    bad = _spec(tmp_path)
    bad["proxy"]["candidates"] = [{"data_fraction": 1.5}]
    with pytest.raises(SpecError, match=r"key 'proxy.candidates\[0\].data_fraction'"):
        Pipeline.from_dict(bad)
    with pytest.raises(SpecError, match=r"key 'proxy.num_models'.*only 24 architectures"):
        Pipeline.from_dict(_spec(tmp_path, proxy={"num_models": 30, "candidates": [{}]}))
    with pytest.raises(SpecError, match=r"key 'augment.fixed.nope'"):
        Pipeline.from_dict(_spec(tmp_path, augment={"space": "randaugment",
                                                    "fixed": {"nope": 1}}))
    grid = Pipeline.from_dict(_spec(tmp_path, proxy={"num_models": 6, "candidates": {
        "data_fraction": [0.5, 1.0], "epochs": [2, 3]}}))
    assert grid.candidates() == [{"data_fraction": 0.5, "epochs": 2},
                                 {"data_fraction": 0.5, "epochs": 3},
                                 {"data_fraction": 1.0, "epochs": 2},
                                 {"data_fraction": 1.0, "epochs": 3}]


def test_example_pipeline_file_is_valid():
    pipe = Pipeline.from_yaml(Path(__file__).parent.parent / "examples" / "nas_pipeline.yaml")
    assert pipe.stages == ("proxy", "search", "final", "augment")


@pytest.mark.timeout(180)
def test_pipeline_end_to_end_and_resume(ray_session, tmp_path):
    summary = run_pipeline(_spec(tmp_path))
    root = Path(summary["path"])
    on_disk = json.loads((root / "pipeline.json").read_text())
    assert list(on_disk["stages"]) == ["proxy", "search", "final", "augment"]
    assert all(st["status"] == "complete" for st in on_disk["stages"].values())

    # proxy: the cheap candidate never ranks well, the full one succeeds but costs more
    proxy = on_disk["stages"]["proxy"]
    choice = proxy["choice"]
    assert choice["settings"] == {"data_fraction": 0.6, "epochs": 3}
    assert choice["steps"] == 2 and choice["tau"] >= 0.65
    assert [r["stop_step"] for r in choice["table"]] == [None, 2, 2]
    assert len(proxy["reference"]["models"]) == 8
    assert all(isinstance(s, float) for s in proxy["reference"]["scores"])

    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    by_stage: dict[str, list[dict]] = {}
    for c in calls:
        by_stage.setdefault(Path(c["trial_dir"]).parent.name, []).append(c)
    assert {n for n in by_stage if not n.startswith("proxy_")} == {
        "reference", "search", "final", "augment"}
    assert len([n for n in by_stage if n.startswith("proxy_")]) == 3
    # search: proxy settings and proxy length
    search = on_disk["stages"]["search"]
    assert search["max_epochs"] == 2 and search["settings"] == {"data_fraction": 0.6}
    # the proxy validated was "3-epoch schedule, stopped at step 2": the search trains that
    assert search["schedule_epochs"] == 3
    assert all(c["max_epochs"] == 3 and c["data_fraction"] == 0.6 for c in by_stage["search"])
    search_rows = pd.read_csv(Path(search["path"]) / "results.csv")
    assert (search_rows["epochs"] == 2).all()
    proxy_dir = next(Path(r["path"]) for r in proxy["candidates"]
                     if r["settings"] == {"data_fraction": 0.6, "epochs": 3})
    at_step2 = {}
    for hist in proxy_dir.glob("trial_*/history.jsonl"):
        rows = [json.loads(x) for x in hist.read_text().splitlines()]
        model = proxy["reference"]["models"][rows[0]["model"]]
        at_step2[tuple(model[k] for k in ("depth", "width", "op"))] = rows[1]["val_acc"]
    for _, row in search_rows.iterrows():
        key = (int(row["config/depth"]), int(row["config/width"]), str(row["config/op"]))
        if key in at_step2:  # an architecture both trained: the same score at step 2
            assert row["val_acc"] == pytest.approx(at_step2[key])
    assert 2 <= len(by_stage["search"]) <= 8        # random search reuses duplicates

    # final: the top 2 searched architectures, base settings, full length
    final = on_disk["stages"]["final"]
    top = [t["config"] for t in search["top"][:2]]
    assert [m["config"] for m in final["models"]] == top
    arch_keys = ("depth", "width", "op")
    trained = sorted((c["depth"], c["width"], c["op"]) for c in by_stage["final"])
    assert trained == sorted(tuple(t[k] for k in arch_keys) for t in top)
    assert all(c["max_epochs"] == 4 and "data_fraction" not in c for c in by_stage["final"])
    best = max(final["models"], key=lambda m: m["score"])
    assert final["best_config"] == best["config"]

    # augment: grid of 4 on the best final architecture, trained to the end
    aug = on_disk["stages"]["augment"]
    assert aug["architecture"] == final["best_config"]
    assert len(by_stage["augment"]) == 4
    for c in by_stage["augment"]:
        assert {k: c[k] for k in arch_keys} == final["best_config"] and c["max_epochs"] == 4
    assert aug["best_config"] == {"num_ops": 2, "magnitude": 9}
    assert aug["baseline_metric"] == pytest.approx(final["best_metric"])
    assert aug["gain"] == pytest.approx(aug["best_metric"] - final["best_metric"])
    assert aug["gain"] > 0 and aug["chosen"] == aug["best_config"]
    assert on_disk["best"]["augment_gain"] == pytest.approx(aug["gain"])
    assert on_disk["best"]["architecture"] == final["best_config"]
    assert on_disk["best"]["augment"] == {"num_ops": 2, "magnitude": 9}

    # resume: every stage is complete, nothing trains again
    again = run_pipeline(_spec(tmp_path))
    assert again["stages"] == on_disk["stages"]
    assert len((tmp_path / "calls.jsonl").read_text().splitlines()) == len(calls)
    # changing what a completed stage used is refused instead of reusing stale results
    with pytest.raises(SpecError, match="key 'final'.*completed stage 'final'"):
        run_pipeline(_spec(tmp_path, final={"top_n": 3}))
    assert len(search["top"]) >= 2


def test_proxy_trial_is_the_validated_proxy(tmp_path):
    """Searching with the proxy (E-epoch schedule stopped at step s) reproduces, step by step,
    what the proxy candidate reported during validation (an E-epoch run), and differs from a
    run whose schedule is squeezed into s epochs."""
    from orchestrator.pipeline import PROXY_SCHEDULE, PROXY_TRAINER, proxy_trial
    from trainers.api import LocalContext
    from trainers.nas.train import train

    cfg = {"arch": "mnasnet", "dataset": "digits", "image_size": 16, "width_scale": 0.25,
           "batch_size": 64, "data_fraction": 0.3, "device": "cpu", "lr": 0.2,
           "checkpoint_every": 0, "latency_warmup": 0, "latency_repeats": 1}

    def run(trainer, config, max_epochs, name):
        ctx = LocalContext(tmp_path / name, seed=3, max_epochs=max_epochs, echo=False,
                           tensorboard=False)
        trainer(config, ctx)
        return [(r["epoch"], r["lr"], r["val_acc"], r["val_loss"]) for r in ctx.results]

    validated = run(train, cfg, 3, "candidate")                 # the proxy candidate: E = 3
    searched = run(proxy_trial, {**cfg, PROXY_TRAINER: "nas", PROXY_SCHEDULE: 3}, 2, "search")
    squeezed = run(train, cfg, 2, "squeezed")                   # schedule squeezed into s = 2
    assert len(validated) == 3 and len(searched) == 2
    assert searched == validated[:2]
    assert squeezed[1][1] != validated[1][1]                    # the lr at step 2 differs


def test_proxy_trial_stops_a_trainer_that_ignores_should_stop(tmp_path):
    from orchestrator.pipeline import PROXY_SCHEDULE, PROXY_TRAINER, proxy_trial
    from trainers.api import LocalContext

    ctx = LocalContext(tmp_path, seed=0, max_epochs=2, echo=False, tensorboard=False)
    rec = tmp_path / "calls.jsonl"
    proxy_trial({"depth": 2, "width": 1, "op": "a", "record_to": str(rec),
                 PROXY_TRAINER: TRAINER, PROXY_SCHEDULE: 4}, ctx)
    assert [r["epoch"] for r in ctx.results] == [1, 2]
    assert json.loads(rec.read_text())["max_epochs"] == 4


def test_augmentation_that_does_not_beat_the_baseline_is_not_chosen(ray_session, tmp_path):
    spec = _spec(tmp_path, stages=["search", "final", "augment"],
                 search={"num_samples": 2, "searcher": {"type": "random", "seed": 0}},
                 final={"top_n": 1},
                 augment={"space": {"name": "ra", "parameters": {
                     "num_ops": {"type": "ordinal", "sequence": [1, 3]},
                     "magnitude": {"type": "ordinal", "sequence": [1]}}}})
    summary = run_pipeline(spec)
    aug = summary["stages"]["augment"]
    assert aug["gain"] < 0                     # nas_like: 1 or 3 ops at magnitude 1 hurt
    assert aug["chosen"] == "none" and aug["chosen_metric"] == aug["baseline_metric"]
    assert summary["best"]["augment"] == "none"


@pytest.mark.parametrize("name", ["detection_pipeline.yaml", "nasfpn_pipeline.yaml"])
def test_detection_pipeline_examples_are_valid(name):
    pipe = Pipeline.from_yaml(Path(__file__).parent.parent / "examples" / name)
    assert pipe.stages == ("proxy", "search", "final", "augment")
    assert pipe.data["task"] == "detection" and pipe.metric == "map_50"
    assert pipe.proxy.num_models >= 8 and pipe.proxy.target_tau == 0.65
    assert pipe.augment.space == "randaugment_detection"
