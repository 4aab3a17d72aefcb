"""Experiment spec: YAML <-> typed objects and validation before Ray starts (no Ray here)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
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
    with pytest.raises(dataclasses.FrozenInstanceError):
        exp.name = "other"  # type: ignore[misc]


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


# ------------------------------------------------------------------ bad files, one error each
FINETUNE = dict(name="ft", space="quicktune_cpu", fixed={"model": "test_resnet", "cotuning-reg": 0.0},
                trainer="finetune", data={"dataset": "digits", "image_size": 32},
                searcher={"type": "random", "seed": 0}, num_samples=2, max_epochs=3)
BAD_FILES = [  # (change to a valid experiment, dotted key the error must name)
    (dict(num_sample=3), "num_sample"),
    (dict(num_samples="ten"), "num_samples"),
    (dict(num_samples=0), "num_samples"),
    (dict(max_epochs=True), "max_epochs"),
    (dict(max_epochs=0), "max_epochs"),
    (dict(mode="maximize"), "mode"),
    (dict(metric=""), "metric"),
    (dict(metric="val_acc", mode="min"), "mode"),
    (dict(name="a/b"), "name"),
    (dict(max_concurrent=0), "max_concurrent"),
    (dict(time_budget_s=0), "time_budget_s"),
    (dict(max_failures=-2), "max_failures"),
    (dict(space=5), "space"),
    (dict(resources={"cpu": 0}), "resources.cpu"),
    (dict(resources={"gpu": 1.5}), "resources.gpu"),
    (dict(resources={"tpu": 1}), "resources.tpu"),
    (dict(searcher={"type": "rndom"}), "searcher.type"),
    (dict(searcher={"type": "tpe", "sed": 1}), "searcher.sed"),
    (dict(searcher={"type": "random", "storage": "sqlite:///s.db"}), "searcher.storage"),
    (dict(searcher={"type": "tpe", "storage": "study.db"}), "searcher.storage"),
    (dict(searcher={"type": "evolution", "population_size": 1}), "searcher.population_size"),
    (dict(searcher={"type": "evolution", "sample_size": 30}), "searcher.sample_size"),
    (dict(searcher={"type": "evolution", "mutation_prob": 1.5}), "searcher.mutation_prob"),
    (dict(searcher={"type": "evolution", "objectives": [["val_acc", "up"]]}),
     "searcher.objectives.0"),
    (dict(searcher={"type": "evolution", "constraints": ["params is small"]}),
     "searcher.constraints.0"),
    (dict(scheduler={"type": "asah"}), "scheduler.type"),
    (dict(scheduler={"type": "asha", "options": {"grace_perod": 1}}),
     "scheduler.options.grace_perod"),
    (dict(scheduler={"type": "asha", "options": {"grace_period": 10}}),
     "scheduler.options.grace_period"),
    (dict(scheduler={"type": "asha", "options": {"reduction_factor": 1}}),
     "scheduler.options.reduction_factor"),
    (dict(scheduler={"type": "pbt", "options": {"quantile_fraction": 0.7}}),
     "scheduler.options.quantile_fraction"),
    (dict(scheduler={"type": "pb2", "options": {"burn_in_period": 2}}),
     "scheduler.options.burn_in_period"),
    (dict(scheduler={"type": "fifo", "grace_period": 1}), "scheduler.grace_period"),
    (dict(searcher={"type": "tpe"}, scheduler={"type": "pbt"}), "searcher.type"),
    (dict(space="no_such_space_xyz"), "space"),
    (dict(fixed={"dept": 2}), "fixed.dept"),
    (dict(fixed={"depth": 7}), "fixed"),
    (dict(trainer="trainers_for_tests:curv"), "trainer"),
    (dict(trainer="fintune"), "trainer"),
    (dict(searcher={"type": "grid"}), "searcher.type"),
    (dict(trainer="trainers_for_tests:no_checkpoint", scheduler={"type": "pbt"}), "trainer"),
    (dict(trainer="trainers_for_tests:no_checkpoint", scheduler={"type": "hyperband"}),
     "trainer"),
    (dict(trainer="trainers_for_tests:no_checkpoint",
          scheduler={"type": "median", "hard_stop": False}), "trainer"),
    (dict(scheduler={"type": "pbt", "perturbation_interval": 2},
          data={"checkpoint_every": 3}), "data.checkpoint_every"),
    (dict(FINETUNE, data={"dataset": "digitz"}), "data.dataset"),
    (dict(FINETUNE, data={"dataset": "digits", "image_size": 0}), "data.image_size"),
    (dict(FINETUNE, data={"dataset": "imagefolder", "data_dir": "no/such/folder"}),
     "data.data_dir"),
    (dict(FINETUNE, data={"pretrained": "no_such_checkpoint.pth"}), "data.pretrained"),
    (dict(FINETUNE, data={"batchsize": 8}), "data"),
]


@pytest.mark.parametrize("change,key", BAD_FILES, ids=[k for _, k in BAD_FILES])
def test_bad_file_is_one_error_naming_file_and_key(tmp_path, change, key):
    p = _write(tmp_path, {**_base(), **change})
    with pytest.raises(SpecError) as e:
        Experiment.from_yaml(p)
    assert str(e.value).startswith(f"{p.resolve()}: key '{key}': "), str(e.value)


@pytest.mark.parametrize("text,first,second,key", [
    ("name: a\nspace: x\nname: b\n", 1, 3, "name"),
    ("name: a\ndata:\n  dataset: digits\n  image_size: 32\n  dataset: mnist\n", 3, 5,
     "data.dataset"),
    ("name: a\nsearcher: {type: tpe, seed: 0, seed: 1}\n", 2, 2, "searcher.seed"),
])
def test_key_given_twice_names_both_lines(tmp_path, text, first, second, key):
    p = tmp_path / "dup.yaml"
    p.write_text(text)
    with pytest.raises(SpecError, match=rf"key '{key}': is given twice \(lines {first} and "
                                        rf"{second}\)") as e:
        Experiment.from_yaml(p)
    assert str(e.value).startswith(str(p.resolve()))


def test_not_a_mapping_and_bad_syntax(tmp_path):
    p = tmp_path / "list.yaml"
    p.write_text("- name: a\n")
    with pytest.raises(SpecError, match="must be a mapping of keys, got list"):
        Experiment.from_yaml(p)
    p.write_text("name: [a\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        Experiment.from_yaml(p)


@pytest.mark.parametrize("data,key", [({"dataset": "digitz"}, "data.dataset"),
                                      ({"dataset": "digits", "image_size": 0}, "data.image_size")])
def test_bad_data_stopped_before_any_trial(monkeypatch, tmp_path, data, key):
    import orchestrator.runner as runner

    def boom(*a, **k):  # pragma: no cover - must not be reached
        raise AssertionError("Ray started for an invalid experiment")

    monkeypatch.setattr(runner, "_ensure_ray", boom)
    p = _write(tmp_path, {**FINETUNE, "data": data, "storage": str(tmp_path / "runs")})
    with pytest.raises(SpecError, match=rf"^{p.resolve()}: key '{key}'"):
        runner.run(p)
    assert not (tmp_path / "runs").exists()


def test_sub_specs_validate_themselves():
    with pytest.raises(SpecError, match=r"^key 'searcher.type': 'rndom' is not valid; did you "
                                        r"mean 'random'"):
        SearcherSpec(type="rndom")
    with pytest.raises(SpecError, match=r"^key 'scheduler.options.quantile_fraction': must be "
                                        r"in \(0, 0.5\], got 0.9"):
        SchedulerSpec(type="pbt", options={"quantile_fraction": 0.9})
    exp = Experiment(name="py", space=TOY_SPACE, searcher={"type": "tpe", "seed": 1})
    assert exp.searcher == SearcherSpec(type="tpe", seed=1)
    with pytest.raises(SpecError, match=r"^key 'num_samples': must be >= 1, got 0"):
        exp.replace(num_samples=0)


def test_validating_a_file_never_imports_ray(tmp_path):
    """PBT and PB2 files too: the mutable-parameter and PB2-dependency checks are Ray-free.
    (The finetune trainer: the test trainers' module ships itself to Ray workers.)"""
    files = []
    for i, sched in enumerate(({"type": "pbt"}, {"type": "pb2"}, {"type": "asha"})):
        p = tmp_path / f"e{i}.yaml"
        p.write_text(yaml.safe_dump({**FINETUNE, "scheduler": sched}))
        files.append(str(p))
    code = ("import sys\nfrom orchestrator.spec import Experiment\n"
            f"for f in {files + [str(EXAMPLES / 'quickstart.yaml')]!r}:\n"
            "    Experiment.from_yaml(f)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True)
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize("metric", ["val_acc", "map_50", "miou"])
def test_a_known_metric_with_the_wrong_mode_is_one_error(metric):
    with pytest.raises(SpecError, match=rf"key 'mode'.*{metric}.*mode 'max', not 'min'"):
        Experiment.from_dict({"name": "m", "space": "quicktune_cpu", "trainer": "finetune",
                              "metric": metric, "mode": "min"}).validate()
