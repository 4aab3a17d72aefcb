"""Experiment spec: YAML <-> typed objects and validation before Ray starts (no Ray here)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from orchestrator.spec import Experiment, SchedulerSpec, SearcherSpec
from orchestrator.errors import SpecError
from trainers_for_tests import DISCRETE_SPACE, TOY_SPACE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _base(**kw):
    d = dict(name="t", space=TOY_SPACE, trainer="trainers_for_tests:curve",
             searcher={"type": "random", "seed": 0}, num_samples=2, max_epochs=3)
    d.update(kw)
    return d


def _write(tmp_path, d) -> Path:
    p = tmp_path / "exp.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


def test_from_dict_builds_typed_objects():
    exp = Experiment.from_dict(_base(scheduler={"type": "asha", "options": {"grace_period": 1}},
                                     resources={"cpu": 1, "gpu": 0.5}))
    assert isinstance(exp.searcher, SearcherSpec) and exp.searcher.type == "random"
    assert isinstance(exp.scheduler, SchedulerSpec) and exp.scheduler.options == {"grace_period": 1}
    assert exp.resources.gpu == 0.5 and isinstance(exp.resources.cpu, float)
    with pytest.raises(Exception):
        exp.name = "other"  # frozen


def test_yaml_round_trip(tmp_path):
    exp = Experiment.from_dict(_base(fixed={"opt": "b"}, data={"sleep": 0.0},
                                     scheduler={"type": "median", "grace_period": 2}))
    p = tmp_path / "out.yaml"
    exp.to_yaml(p)
    back = Experiment.from_yaml(p)
    assert back == exp
    assert back.scheduler.options == {"grace_period": 2}  # flat option moved under options


def test_unknown_top_level_key_names_file_key_and_close_match(tmp_path):
    p = _write(tmp_path, _base(num_sample=3))
    with pytest.raises(SpecError) as e:
        Experiment.from_yaml(p)
    msg = str(e.value)
    assert str(p.resolve()) in msg and "num_sample" in msg and "num_samples" in msg


def test_unknown_nested_key_has_dotted_path(tmp_path):
    p = _write(tmp_path, _base(scheduler={"type": "asha", "options": {"grace_perod": 1}}))
    with pytest.raises(SpecError) as e:
        Experiment.from_yaml(p)
    msg = str(e.value)
    assert "scheduler.options.grace_perod" in msg and "grace_period" in msg and "exp.yaml" in msg


def test_unknown_searcher_key_and_bad_type(tmp_path):
    with pytest.raises(SpecError, match=r"searcher\.sed.*seed"):
        Experiment.from_yaml(_write(tmp_path, _base(searcher={"type": "tpe", "sed": 1})))
    with pytest.raises(SpecError, match=r"num_samples.*integer"):
        Experiment.from_yaml(_write(tmp_path, _base(num_samples="ten")))
    with pytest.raises(SpecError, match=r"max_epochs.*integer"):
        Experiment.from_dict(_base(max_epochs=True))  # bool is not an int here
    with pytest.raises(SpecError, match=r"searcher.type.*'rndom'.*random"):
        Experiment.from_dict(_base(searcher={"type": "rndom"}))


def test_metric_and_mode_checked():
    with pytest.raises(SpecError, match="mode"):
        Experiment.from_dict(_base(mode="maximize"))
    with pytest.raises(SpecError, match="val_acc.*max"):
        Experiment.from_dict(_base(metric="val_acc", mode="min"))
    Experiment.from_dict(_base(metric="score", mode="min"))  # unknown metrics: trust the user


def test_pbt_requires_random_searcher_and_checkpointing_trainer():
    with pytest.raises(SpecError, match="pbt.*tpe|tpe.*pbt"):
        Experiment.from_dict(_base(searcher={"type": "tpe"}, scheduler={"type": "pbt"}))
    with pytest.raises(SpecError, match="checkpoint"):
        Experiment.from_dict(_base(trainer="trainers_for_tests:no_checkpoint",
                                   scheduler={"type": "pbt"}))
    Experiment.from_dict(_base(scheduler={"type": "pbt",
                                          "options": {"perturbation_interval": 1}}))


def test_space_fixed_and_trainer_validated():
    with pytest.raises(SpecError, match="space"):
        Experiment.from_dict(_base(space="no_such_space_xyz"))
    with pytest.raises(SpecError, match=r"fixed\.dept.*depth"):
        Experiment.from_dict(_base(fixed={"dept": 2}))
    with pytest.raises(SpecError, match="fixed"):
        Experiment.from_dict(_base(fixed={"depth": 7}))
    with pytest.raises(SpecError, match=r"trainer.*curv.*curve"):
        Experiment.from_dict(_base(trainer="trainers_for_tests:curv"))
    with pytest.raises(SpecError, match="trainer"):
        Experiment.from_dict(_base(trainer="fintune"))


def test_grid_size_limit_names_size():
    Experiment.from_dict(_base(space=DISCRETE_SPACE, searcher={"type": "grid"}))
    with pytest.raises(SpecError, match=r"\b6\b.*limit 5"):
        Experiment.from_dict(_base(space=DISCRETE_SPACE,
                                   searcher={"type": "grid", "max_grid_size": 5}))
    with pytest.raises(SpecError, match="continuous"):
        Experiment.from_dict(_base(searcher={"type": "grid"}))


def test_relative_space_file_resolves_against_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    space_file = tmp_path / "sub" / "space.yaml"
    space_file.write_text(yaml.safe_dump(DISCRETE_SPACE))
    p = tmp_path / "sub" / "exp.yaml"
    p.write_text(yaml.safe_dump(_base(space="space.yaml")))
    exp = Experiment.from_yaml(p)
    assert len(exp.load_space()) == 2
    assert str(space_file) in exp.to_yaml()


def test_validation_happens_before_ray(monkeypatch):
    import orchestrator.runner as runner

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("Ray started for an invalid experiment")

    monkeypatch.setattr(runner, "_ensure_ray", boom)
    with pytest.raises(SpecError):
        runner.run(_base(scheduler={"type": "asha", "options": {"grace_period": 10}}))


@pytest.mark.parametrize("name", ["quickstart", "quicktune", "pbt"])
def test_examples_are_valid(name):
    exp = Experiment.from_yaml(EXAMPLES / f"{name}.yaml")
    assert exp.name == name
