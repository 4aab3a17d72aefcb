"""Full-state checkpoints: atomic writes, RNG round trip, bit-exact resume."""
from __future__ import annotations

import random

import numpy as np
import pytest
import timm
import torch

from trainers.errors import TrainerError
from trainers.checkpoint import (
    STATE_FILE, capture_rng_state, load_checkpoint, read_checkpoint, restore_rng_state, save_checkpoint,
)
from trainers.config import TrainerConfig
from trainers.local import run_local
from trainers.optim import create_optimizer, create_scheduler

torch.set_num_threads(1)


def test_rng_round_trip():
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = capture_rng_state()
    a = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(state)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_save_load_full_state(tmp_path):
    torch.manual_seed(0)
    cfg = TrainerConfig.from_dict({"sched": "plateau", "patience-epochs": 1, "opt": "adamw"})
    model = timm.create_model("test_resnet", num_classes=3)
    opt = create_optimizer(model, cfg)
    sched = create_scheduler(opt, cfg, 10)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    opt.step()
    for e, m in enumerate([0.5, 0.4, 0.4]):
        sched.step(e + 1, metric=m)
    path = save_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=3,
                           best_metric=0.5, extra={"note": torch.tensor([1, 2])})
    assert path.name == STATE_FILE and [p.name for p in tmp_path.iterdir()] == [STATE_FILE]

    model2 = timm.create_model("test_resnet", num_classes=3)
    opt2 = create_optimizer(model2, cfg)
    sched2 = create_scheduler(opt2, cfg, 10)
    info = load_checkpoint(tmp_path, model=model2, optimizer=opt2, scheduler=sched2)
    assert info["epoch"] == 3 and info["best_metric"] == 0.5
    assert torch.equal(info["extra"]["note"], torch.tensor([1, 2]))
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    # AdamW's per-parameter state (step, exp_avg, exp_avg_sq) for every parameter, bit-exact
    state, state2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert state and set(state2) == set(state)
    for i, per_param in state.items():
        assert set(per_param) == set(state2[i]) >= {"step", "exp_avg", "exp_avg_sq"}
        for key, value in per_param.items():
            assert torch.equal(torch.as_tensor(state2[i][key]), torch.as_tensor(value)), (i, key)
    inner, inner2 = sched.lr_scheduler, sched2.lr_scheduler
    assert (inner2.best, inner2.num_bad_epochs) == (inner.best, inner.num_bad_epochs)
    with pytest.raises(TrainerError, match="no checkpoint"):
        read_checkpoint(tmp_path / "missing")


CONFIGS = {
    # exercises python/numpy/torch RNGs (augment, mixup, dropout), the loader generator, the
    # linear-probing switch right at the resume point, L2-SP's w0 and the warmup schedule
    "probing-mixup": {"linear-probing": True, "mixup": 0.4, "mixup-prob": 0.5, "drop": 0.2,
                      "data-augmentation": "random-augment", "ra-num-ops": 2, "ra-magnitude": 9,
                      "sp-reg": 1e-3, "opt": "adamw", "warmup_epochs": 1, "warmup-lr": 1e-4,
                      "pct-to-freeze": 0.2},
    # plateau state, StochNorm's Bernoulli masks, layer decay groups, clipping, DELTA copy
    "plateau-stochnorm": {"sched": "plateau", "patience-epochs": 2, "decay-rate": 0.5,
                          "stoch-norm": True, "layer-decay": 0.75, "clip-grad": 1.0,
                          "delta-reg": 1e-3, "opt": "momentum", "momentum": 0.9,
                          "data-augmentation": "trivial-augment"},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_resume_is_bit_exact(tmp_path, name):
    config = {"model": "test_resnet", "image_size": 16, "batch-size": 32, "data_fraction": 0.2,
              "lr": 1e-2, "deterministic": True, "num_workers": 0, **CONFIGS[name]}
    straight = run_local(config, tmp_path / "straight", max_epochs=4, seed=3, echo=False, num_cpus=1)
    first = run_local({**config}, tmp_path / "first", max_epochs=4, seed=3, echo=False, num_cpus=1,
                      trainer="tests.test_checkpoint:stop_after_two")
    assert [r["epoch"] for r in first] == [1, 2]
    ckpt = tmp_path / "first" / "checkpoints" / "epoch_0002"
    resumed = run_local(config, tmp_path / "resumed", max_epochs=4, seed=3, echo=False, num_cpus=1,
                        restore_dir=ckpt)
    assert [r["epoch"] for r in resumed] == [3, 4]
    for key in ("train_loss", "val_loss", "val_acc", "lr"):
        assert [r[key] for r in straight[:2]] == [r[key] for r in first], key
        assert [r[key] for r in straight[2:]] == [r[key] for r in resumed], key
    a = read_checkpoint(tmp_path / "straight" / "checkpoints" / "epoch_0004")
    b = read_checkpoint(tmp_path / "resumed" / "checkpoints" / "epoch_0004")
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def stop_after_two(config, ctx):
    """The finetune trainer, asked to stop after its second epoch (a preempted trial)."""
    from trainers.finetune import train

    report = ctx.report

    def report_then_stop(metrics, checkpoint_dir=None):
        report(metrics, checkpoint_dir)
        if metrics["epoch"] >= 2:
            ctx.request_stop()

    ctx.report = report_then_stop
    train(config, ctx)


@pytest.mark.parametrize("sched", ["cosine", "plateau"])
def test_resume_with_mutated_hyperparameters_uses_new_values(tmp_path, sched):
    """A PBT exploit restores another trial's checkpoint under a mutated config: the new lr and
    weight decay apply from the first resumed epoch."""
    config = {"model": "test_resnet", "image_size": 16, "batch-size": 32, "data_fraction": 0.1,
              "lr": 1e-2, "weight-decay": 1e-4, "opt": "adamw", "sched": sched,
              "patience-epochs": 5}
    run_local(config, tmp_path / "a", max_epochs=4, seed=0, echo=False, num_cpus=1,
              trainer="tests.test_checkpoint:stop_after_two")
    ckpt = tmp_path / "a" / "checkpoints" / "epoch_0002"
    same = run_local(config, tmp_path / "same", max_epochs=4, seed=0, echo=False, num_cpus=1,
                     restore_dir=ckpt)
    mutated = run_local({**config, "lr": 4e-2, "weight-decay": 1e-3}, tmp_path / "b", max_epochs=4,
                        seed=0, echo=False, num_cpus=1, restore_dir=ckpt)
    assert mutated[0]["lr"] == pytest.approx(4 * same[0]["lr"])
    state = read_checkpoint(tmp_path / "b" / "checkpoints" / "epoch_0004")
    assert {g["weight_decay"] for g in state["optimizer"]["param_groups"]} == {0.0, 1e-3}


@pytest.mark.parametrize("base, mutation", [
    ({}, {"weight-decay": 1e-2}),                      # 1 param group -> 2 (decay / no-decay)
    ({}, {"weight-decay": 1e-2, "layer-decay": 0.75}),  # -> one pair of groups per layer
    ({"sched": "plateau", "patience-epochs": 1}, {"weight-decay": 1e-2, "layer-decay": 0.65}),
])
def test_resume_when_optimiser_grouping_changes(tmp_path, base, mutation):
    """A PBT exploit can change how the optimiser groups its parameters (weight decay 0 puts
    everything in one group; layer decay adds groups per layer): the resumed run keeps the
    weights and each parameter's optimiser state, and applies the new hyperparameters."""
    config = {"model": "test_resnet", "image_size": 16, "batch-size": 32, "data_fraction": 0.1,
              "lr": 1e-2, "weight-decay": 0.0, "opt": "adamw", "sched": "cosine", "num_workers": 0,
              **base}
    run_local(config, tmp_path / "a", max_epochs=3, seed=0, echo=False, num_cpus=1,
              trainer="tests.test_checkpoint:stop_after_one")
    ckpt = tmp_path / "a" / "checkpoints" / "epoch_0001"
    saved = read_checkpoint(ckpt)
    assert len(saved["optimizer"]["param_groups"]) == 1

    from trainers.api import LocalContext
    from trainers.finetune import FineTuner

    ctx = LocalContext(tmp_path / "b", seed=0, max_epochs=3, restore_dir=ckpt, num_cpus=1,
                       echo=False, tensorboard=False)
    ft = FineTuner({**config, **mutation}, ctx)
    groups = ft.optimizer.param_groups
    assert len(groups) >= 2
    assert {g["weight_decay"] for g in groups} == {0.0, 1e-2}
    if "layer-decay" in mutation:
        assert len({g["lr_scale"] for g in groups}) > 1
    # weights and per-parameter Adam moments came across
    names = {p: n for n, p in ft.model.named_parameters()}
    for n, p in ft.model.named_parameters():
        assert torch.equal(p.detach().cpu(), saved["model"][n]), n
    states = [ft.optimizer.state[p] for g in groups for p in g["params"]]
    assert all("exp_avg" in s for s in states) and len(states) == len(names)
    assert all(float(s["step"]) == float(next(iter(saved["optimizer"]["state"].values()))["step"])
               for s in states)
    ft.fit()
    assert [r["epoch"] for r in ctx.results] == [2, 3]
    assert all(r["diverged"] == 0 for r in ctx.results)
    ctx.close()
    state = read_checkpoint(tmp_path / "b" / "checkpoints" / "epoch_0003")
    assert {g["weight_decay"] for g in state["optimizer"]["param_groups"]} == {0.0, 1e-2}


def stop_after_one(config, ctx):
    """The finetune trainer, stopping after its first epoch."""
    from trainers.finetune import train

    report = ctx.report

    def report_then_stop(metrics, checkpoint_dir=None):
        report(metrics, checkpoint_dir)
        ctx.request_stop()

    ctx.report = report_then_stop
    train(config, ctx)
