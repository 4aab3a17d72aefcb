"""End to end on Ray (digits, tiny): a composed network searched by evolution, a ModelSpace
searched by local search through the Python API, and architectures deduplicated by arch_id."""
from __future__ import annotations

import pytest
from compose_models_for_tests import Tiny

from orchestrator.spec import Experiment, SearcherSpec
from spaces.tree import choice
from trainers.nas.model_space import ModelSpace

TINY = {"dataset": "digits", "image_size": 8, "batch_size": 128, "data_fraction": 0.3,
        "latency_repeats": 1, "latency_warmup": 0, "checkpoint_every": 0}

NETWORK = {
    "modules": ["stem", "body", "head"],
    "stem": {"type": "SmallInputInitialBlock", "init_plane": 4},
    "body": {"type": "Repeat", "num_reps": 2, "ref": {"type": "BasicBlock"},
             "items": {"inchannel": 4, "outchannel": 4, "stride": [2, 1]}},
    "head": {"type": "LinearClassificationHead", "base_channel": 4, "num_class": 10},
    "hyper_parameters": {"body.items.stride": {"type": "categorical",
                                               "choices": [[1, 1], [2, 1], [2, 2]]}},
}


@pytest.mark.slow
def test_compose_network_searched_by_evolution(ray_session, tmp_path):
    from orchestrator import run

    exp = Experiment.from_dict({
        "name": "compose_e2e", "network": NETWORK, "data": TINY,
        "searcher": {"type": "evolution", "population_size": 2, "sample_size": 1, "seed": 0},
        "num_samples": 4, "max_epochs": 1, "max_concurrent": 1,
        "storage": str(tmp_path / "runs")})
    assert exp.trainer == "compose" and exp.load_space().size() == 3
    res = run(exp)
    df = res.dataframe
    assert len(df) == 4
    assert set(df["status"]) <= {"completed", "duplicate"}
    # one at a time, so every suggestion sees all earlier trials trained: 4 trials over 3
    # architectures repeat one, which is answered from the earlier trial
    assert (df["status"] == "duplicate").sum() >= 1
    assert 0.0 < res.best_metric <= 1.0


@pytest.mark.slow
def test_model_space_as_python_api_trainer(ray_session, tmp_path):
    from orchestrator import run

    ms = ModelSpace(Tiny, {"kernel": choice([1, 3]), "mult": choice([1, 2])}, seed=0)
    exp = Experiment(name="model_space_e2e", trainer=ms, data=TINY, max_epochs=1,
                     searcher=SearcherSpec(type="local", seed=0), num_samples=3,
                     max_concurrent=2, storage=str(tmp_path / "runs"))
    assert exp.load_space().size() == 4
    res = run(exp)
    assert len(res.dataframe) == 3 and res.best_metric is not None
    assert "kernel" in res.best_config


def test_callable_trainer_without_space_is_a_spec_error():
    from orchestrator.errors import SpecError

    with pytest.raises(SpecError, match="space"):
        Experiment(name="x", trainer=lambda c, ctx: None).validate()
