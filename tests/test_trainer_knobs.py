"""Trainer knobs declared once (trainers/knobs.py): validation, aliases, the data: check,
the generated docs and help, and the trainers' one error family."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_nas_train import tiny_mnasnet

from spaces.errors import ArchtuneError
from spaces.library import get_space
from trainers.api import LocalContext
from trainers.config import TrainerConfig, validate_data
from trainers.data import DataConfig
from trainers.errors import TrainerError
from trainers.knobs import DATA_KNOBS, FINETUNE_KNOBS, NAS_KNOBS, TABLES, render_markdown
from trainers.nas.settings import NasTrainConfig, split_config

REPO = Path(__file__).resolve().parents[1]
QUICKTUNE_SPELLINGS = {"opt": "optimizer", "batch-size": "batch_size",
                       "weight-decay": "weight_decay", "smoothing": "label_smoothing",
                       "clip-grad": "grad_clip"}


# -- one declaration drives the dataclasses ------------------------------------------------------
def test_dataclass_defaults_are_the_declared_defaults():
    assert TrainerConfig().to_dict() == FINETUNE_KNOBS.defaults()
    nas = NasTrainConfig()
    assert {k.name: getattr(nas, k.field) for k in NAS_KNOBS.values()} == NAS_KNOBS.defaults()
    # DataConfig declares its own fields: they must agree with the data knobs
    for f in dataclasses.fields(DataConfig):
        assert f.default == DATA_KNOBS.by_field(f.name).default, f.name


@pytest.mark.parametrize("name", ["quicktune", "quicktune_cpu"])
def test_the_quicktune_spaces_stay_inside_the_declared_domains(name):
    space = get_space(name)
    assert set(space.params) <= set(FINETUNE_KNOBS)
    for seed in range(40):
        config = space.sample(seed)
        assert TrainerConfig.from_dict(config).to_dict().items() >= {
            k: FINETUNE_KNOBS[k].parse(v) for k, v in config.items()}.items()


def _outside(knob):
    """A value just outside a bounded numeric knob's domain, and the closed bound itself."""
    step = 1 if knob.kind == "int" else 1e-3
    if knob.low is not None:
        return (knob.low if knob.low_open else knob.low - step), \
            (None if knob.low_open else knob.low)
    return (knob.high if knob.high_open else knob.high + step), \
        (None if knob.high_open else knob.high)


@pytest.mark.parametrize("trainer", ["finetune", "nas"])
def test_every_bounded_knob_rejects_the_value_outside_its_domain(trainer):
    build = TrainerConfig.from_dict if trainer == "finetune" else NasTrainConfig.from_dict
    checked = 0
    for knob in TABLES[trainer].values():
        if knob.kind not in ("int", "float") or (knob.low is None and knob.high is None):
            continue
        bad, edge = _outside(knob)
        with pytest.raises(TrainerError, match=f"{knob.name}: must be"):
            build({knob.name: bad})
        if edge is not None:
            build({knob.name: edge})
        checked += 1
    assert checked >= (25 if trainer == "finetune" else 15)


@pytest.mark.parametrize("key, value, match", [
    ("lr", "fast", r"lr: must be a number > 0, got 'fast'"),
    ("batch-size", 2.5, r"batch-size: must be an integer >= 1"),
    ("linear-probing", "maybe", r"linear-probing: must be true or false"),
    ("opt", "lamb", r"opt: must be one of sgd, momentum, adam, adamw, adamp"),
    ("sched", "cosin", r"did you mean 'cosine'"),
    ("opt-betas", "0.9", r"opt-betas: must be two numbers in \[0, 1\)"),
    ("pretrained", 3, r"pretrained: must be true, false or a checkpoint path"),
    ("device", "gpu", r"device: must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ("image_size", 0, r"image_size: must be an integer >= 1 or null"),
    ("ra-magnitude", 31, r"ra-magnitude: must be an integer in \[0, 30\]"),
])
def test_wrong_type_or_domain_names_key_and_rule(key, value, match):
    with pytest.raises(TrainerError, match=match):
        TrainerConfig.from_dict({key: value})


def test_all_problems_of_a_config_in_one_error():
    with pytest.raises(TrainerError) as info:
        TrainerConfig.from_dict({"pct_to_freeze": 0.2, "lr": -1, "opt": "adm", "amp": "yes"})
    msg = str(info.value)
    assert "unknown config key 'pct_to_freeze' (did you mean 'pct-to-freeze'?)" in msg
    assert "lr: must be a number > 0, got -1" in msg
    assert "did you mean 'adam'" in msg and "amp: must be true or false" in msg
    assert "Valid keys:" in msg


def test_values_are_normalised():
    cfg = TrainerConfig.from_dict({"batch-size": 8.0, "lr": "1e-3", "amp": "TRUE", "opt": "AdamW",
                                   "opt-betas": [0.0, 0.99], "image_size": np.int64(24),
                                   "pretrained": Path("ckpt.pt")})
    assert cfg.batch_size == 8 and isinstance(cfg.batch_size, int)
    assert cfg.lr == 1e-3 and cfg.amp is True and cfg.opt == "adamw"
    assert cfg.betas == (0.0, 0.99) and cfg.image_size == 24 and cfg.pretrained == "ckpt.pt"
    assert TrainerConfig.from_dict(cfg.to_dict()) == cfg
    assert dataclasses.replace(cfg, lr=0.5).lr == 0.5
    with pytest.raises(TrainerError, match="lr"):
        dataclasses.replace(cfg, lr=0)


# -- the two spellings -----------------------------------------------------------------------
def test_nas_accepts_quicktune_and_old_spellings():
    values = {"opt": "adamw", "batch-size": 8, "weight-decay": 0.1, "smoothing": 0.2,
              "clip-grad": 1.0}
    quick = NasTrainConfig.from_dict(values)
    old = NasTrainConfig.from_dict({QUICKTUNE_SPELLINGS[k]: v for k, v in values.items()})
    assert quick == old
    assert (quick.optimizer, quick.batch_size, quick.weight_decay, quick.label_smoothing,
            quick.grad_clip) == ("adamw", 8, 0.1, 0.2, 1.0)


@pytest.mark.parametrize("quick, old", sorted(QUICKTUNE_SPELLINGS.items()))
def test_both_spellings_of_one_knob_is_one_clear_error(quick, old):
    value = "sgd" if quick == "opt" else 1
    for build in (NasTrainConfig.from_dict, TrainerConfig.from_dict):
        with pytest.raises(TrainerError, match=f"'{quick}' and '{old}' are two spellings of "
                                               f"knob '{quick}': give one"):
            build({quick: value, old: value})


def test_finetune_accepts_the_nas_spellings_too():
    assert TrainerConfig.from_dict({"batch_size": 8, "label_smoothing": 0.1, "optimizer": "sgd"}) \
        == TrainerConfig.from_dict({"batch-size": 8, "smoothing": 0.1, "opt": "sgd"})


def _tiny_mnasnet(**run) -> dict:
    """test_nas_train's small MnasNet on 10 % of digits at 16 px, without a batch-size key."""
    cfg = tiny_mnasnet(data_fraction=0.1, image_size=16, latency_warmup=0, latency_repeats=1)
    del cfg["batch_size"]
    return {**cfg, **run}


def test_nas_trainer_trains_with_quicktune_spellings(tmp_path):
    from trainers.nas.train import NasTrainer

    ctx = LocalContext(tmp_path / "t", seed=0, num_cpus=1, echo=False, tensorboard=False,
                       max_epochs=1)
    trainer = NasTrainer(_tiny_mnasnet(**{"opt": "adamw", "batch-size": 8, "weight-decay": 0.01,
                                          "smoothing": 0.1}), ctx)
    trainer._setup()
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert trainer.optimizer.param_groups[0]["weight_decay"] == 0.01
    assert trainer.criterion.label_smoothing == 0.1
    assert trainer.train_loader.batch_size == 8
    with pytest.raises(TrainerError, match="two spellings"):
        split_config(_tiny_mnasnet(opt="sgd", optimizer="sgd"))


# -- the choice tuples are what the factories accept ----------------------------------------
def test_every_declared_choice_builds():
    from trainers import augment, optim

    model = torch.nn.Linear(4, 2)
    for opt in FINETUNE_KNOBS["opt"].choices:
        cfg = TrainerConfig.from_dict({"opt": opt})
        optimizer = optim.create_optimizer(model, cfg)
        assert isinstance(optimizer, torch.optim.Optimizer)
    for sched in FINETUNE_KNOBS["sched"].choices:
        cfg = TrainerConfig.from_dict({"sched": sched})
        assert optim.create_scheduler(optim.create_optimizer(model, cfg), cfg, 5) is not None
    img = torch.zeros(3, 16, 16, dtype=torch.uint8)
    for name in FINETUNE_KNOBS["data-augmentation"].choices:
        for policy in FINETUNE_KNOBS["auto-augment"].choices:
            cfg = TrainerConfig.from_dict({"data-augmentation": name, "auto-augment": policy})
            assert augment.build_train_transform(cfg.to_dict())(img).shape == img.shape


# -- validate_data ---------------------------------------------------------------------------
def test_validate_data_accepts_a_good_mapping(tmp_path):
    """Each call raises TrainerError on a problem; a good mapping returns None."""
    validate_data({"dataset": "Digits", "image_size": 32, "batch-size": 16})
    validate_data({"dataset": "imagefolder", "data_dir": str(tmp_path)})
    validate_data({"dataset": "cifar10", "data_dir": str(tmp_path / "new"), "download": True})
    validate_data({"opt": "adamw", "blocks.0.kernel": 5}, trainer="nas")
    validate_data({"task": "detection", "dataset": "synthetic-shapes"}, trainer="nas")
    assert validate_data({"dataset": "my-own", "anything": 1}, trainer="mypkg.mod:train") is None


@pytest.mark.parametrize("data, trainer, match", [
    ({"datset": "digits"}, "finetune", r"unknown config key 'datset' \(did you mean 'dataset'"),
    ({"dataset": "cifar-1O"}, "finetune", r"dataset: unknown dataset 'cifar-1O'.*'cifar10'"),
    ({"image_size": 0}, "finetune", r"image_size: must be an integer >= 1"),
    ({"dataset": "imagefolder"}, "finetune", r"data_dir is required"),
    ({"data_dir": "no/such/dir"}, "finetune", r"data_dir: path 'no/such/dir' does not exist"),
    ({"pretrained": "missing.pt"}, "finetune", r"pretrained: path 'missing.pt' does not exist"),
    ({"opt": "adam"}, "nas", r"opt: must be one of sgd, adamw"),
    ({"task": "detection", "dataset": "digits"}, "nas", r"dataset: a detection task needs"),
    ({"dataset": "digitz"}, "nas", r"dataset: unknown dataset 'digitz'. Did you mean 'digits'"),
    ({"image_size": 0, "other": 1}, "mypkg.mod:train", r"image_size: must be"),
])
def test_validate_data_names_the_key(data, trainer, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TrainerError, match=match):
        validate_data(data, trainer)


def test_validate_data_resolves_relative_paths_under_root(tmp_path, monkeypatch):
    (tmp_path / "spec" / "images").mkdir(parents=True)
    (tmp_path / "spec" / "w.pt").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    data = {"dataset": "imagefolder", "data_dir": "images", "pretrained": "w.pt"}
    validate_data(data, root=tmp_path / "spec")
    with pytest.raises(TrainerError, match="data_dir"):
        validate_data(data)


# -- the docs page and the help are generated from the declarations --------------------------
def test_committed_docs_match_the_declarations():
    committed = (REPO / "docs" / "trainer-knobs.md").read_text()
    assert committed == render_markdown(), \
        "regenerate: python -m trainers.knobs > docs/trainer-knobs.md"


def test_train_help_lists_every_knob(capsys):
    from orchestrator.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for table in TABLES.values():
        for knob in table.values():
            assert f"  {knob.name}" in out and knob.rule in out, knob.name
    assert "opt (or optimizer): one of sgd, adamw; default 'sgd'" in out


# -- one error family --------------------------------------------------------------------------
def _raises_archtune_error(fn, *args, **kw) -> str:
    try:
        fn(*args, **kw)
    except ArchtuneError as exc:
        assert isinstance(exc, TrainerError) and isinstance(exc, ValueError)
        return str(exc)
    raise AssertionError(f"{fn.__name__} raised nothing")


def test_trainer_input_errors_are_archtune_errors():
    from trainers.nas import get_builder
    from trainers.nas.blocks import get_activation
    from trainers.nas.mobile import build_mobile_classifier
    from trainers.nas.objectives import reward

    assert "mnasnet" in _raises_archtune_error(get_builder, "mnasnett")
    assert "task" in _raises_archtune_error(NasTrainConfig, task="keypoints")
    assert "latency_repeats" in _raises_archtune_error(NasTrainConfig.from_dict,
                                                       {"latency_repeats": 0})
    assert "swish2" in _raises_archtune_error(get_activation, "swish2")
    assert "reward kind" in _raises_archtune_error(reward, 0.9, 10.0, 5.0, kind="linear")
    assert "num_classes" in _raises_archtune_error(
        build_mobile_classifier, "mnasnet", get_space("mnasnet").default(), 0)
    assert "lr" in _raises_archtune_error(TrainerConfig.from_dict, {"lr": "fast"})
