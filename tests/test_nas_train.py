"""The ``nas`` trainer: classification and detection training, checkpoints, failure reports."""
from __future__ import annotations

import math

import pytest
import torch

from trainers.errors import TrainerError
from spaces.library import get_space
from trainers.api import LocalContext
from trainers.nas import train as nas_train
from trainers.nas.train import train
from nas_for_tests import shallow_mnasnet


def tiny_mnasnet(**run) -> dict:
    """A small MnasNet (minimal repeats, narrow) plus fast run settings."""
    cfg = shallow_mnasnet(width=0.75)
    cfg.update({"arch": "mnasnet", "width_scale": 0.25, "image_size": 32, "batch_size": 32,
                "lr": 0.05, "latency_warmup": 1, "latency_repeats": 2})
    cfg.update(run)
    return cfg


def _ctx(tmp_path, name="trial", **kw):
    kw.setdefault("max_epochs", 2)
    return LocalContext(tmp_path / name, seed=0, num_cpus=1, echo=False, tensorboard=False, **kw)


def test_classification_on_digits_improves(tmp_path):
    ctx = _ctx(tmp_path, max_epochs=3)
    train(tiny_mnasnet(data_fraction=0.5, latency_target=5.0), ctx)
    res = ctx.results
    assert [r["epoch"] for r in res] == [1, 2, 3]
    for r in res:
        for key in ("train_loss", "val_loss", "val_acc", "metric", "params", "flops", "latency_ms",
                    "reward", "lr", "epoch_time_s", "train_images_per_s", "arch_id"):
            assert key in r, key
        assert r["diverged"] == 0 and r["failed"] == 0
        assert r["metric"] == r["val_acc"]
        assert r["reward"] == pytest.approx(r["val_acc"] * (5.0 / r["latency_ms"]) ** 0.07)
    assert res[-1]["val_acc"] > res[0]["val_acc"]
    assert res[-1]["val_acc"] > 0.3
    assert res[-1]["train_loss"] < res[0]["train_loss"]
    assert res[0]["params"] > 0 and res[0]["flops"] > 0
    assert len({r["arch_id"] for r in res}) == 1
    assert ctx.last_checkpoint is not None and (ctx.last_checkpoint / "state.pt").is_file()


def test_arch_id_ignores_unused_params(tmp_path, monkeypatch):
    ids = []
    # stop right after setup: only the reported arch_id matters here
    monkeypatch.setattr(nas_train.NasTrainer, "_train_epoch",
                        lambda self: (_ for _ in ()).throw(nas_train._Diverged("stop")))
    for exp in (1, 6):
        cfg = tiny_mnasnet(**{"blocks.3.op": "conv", "blocks.3.expansion": exp})
        ctx = _ctx(tmp_path, f"t{exp}", max_epochs=1)
        train(cfg, ctx)
        ids.append(ctx.results[-1]["arch_id"])
    assert ids[0] == ids[1]
    space = get_space("mnasnet")
    expected = {k: v for k, v in tiny_mnasnet(**{"blocks.3.op": "conv"}).items() if k in space.params}
    expected = {k: v for k, v in expected.items() if space.is_active(k, expected)}
    assert ids[0] == space.config_id(expected)


def test_checkpoint_and_resume_match_uninterrupted_run(tmp_path):
    cfg = tiny_mnasnet(data_fraction=0.1, checkpoint_every=1)
    full = _ctx(tmp_path, "full", max_epochs=2)
    train(cfg, full)
    first = full.trial_dir / "checkpoints" / "epoch_0001"
    assert (first / "state.pt").is_file()
    resumed = _ctx(tmp_path, "resumed", max_epochs=2, restore_dir=first)
    train(cfg, resumed)
    assert [r["epoch"] for r in resumed.results] == [2]
    a, b = full.results[-1], resumed.results[-1]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert b["val_acc"] == pytest.approx(a["val_acc"], abs=1e-6)
    assert b["latency_ms"] == a["latency_ms"]  # objectives come from the checkpoint


def test_nan_reports_diverged(tmp_path):
    ctx = _ctx(tmp_path, max_epochs=3)
    train(tiny_mnasnet(data_fraction=0.1, lr=1e10, latency_target=5.0), ctx)
    assert len(ctx.results) == 1
    r = ctx.results[0]
    assert r["diverged"] == 1 and r["failed"] == 1
    assert r["val_acc"] == 0.0 and r["val_loss"] == 1e9 and r["reward"] == 0.0
    assert "diverged" in r["failure_reason"] and "non-finite" in r["failure_reason"]


def test_out_of_memory_reports_failure(tmp_path, monkeypatch):
    from trainers.nas.mobile import MobileBackbone

    original = MobileBackbone.forward

    def exploding(self, x):
        if self.training and torch.is_grad_enabled():
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(self, x)

    monkeypatch.setattr(MobileBackbone, "forward", exploding)
    ctx = _ctx(tmp_path, max_epochs=2)
    train(tiny_mnasnet(data_fraction=0.1), ctx)  # must not raise
    assert len(ctx.results) == 1
    r = ctx.results[0]
    assert r["failed"] == 1 and r["diverged"] == 0 and r["val_acc"] == 0.0
    assert "out of memory" in r["failure_reason"] and "OutOfMemoryError" in r["failure_reason"]


def test_runtime_error_out_of_memory_message_is_failure_too():
    assert nas_train.is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert nas_train.is_out_of_memory(torch.OutOfMemoryError("x"))
    assert not nas_train.is_out_of_memory(RuntimeError("shape mismatch"))


def test_other_errors_are_not_swallowed(tmp_path, monkeypatch):
    from trainers.nas.mobile import MobileBackbone

    def broken(self, x):
        raise RuntimeError("a real bug")

    monkeypatch.setattr(MobileBackbone, "forward", broken)
    with pytest.raises(RuntimeError, match="a real bug"):
        train(tiny_mnasnet(data_fraction=0.1), _ctx(tmp_path))


def test_invalid_configs_rejected_before_training(tmp_path):
    ctx = _ctx(tmp_path)
    with pytest.raises(TrainerError, match="lrr"):
        train(tiny_mnasnet(lrr=0.1), ctx)
    with pytest.raises(TrainerError, match="did you mean"):
        train(tiny_mnasnet(**{"blocks.1.kernal": 3}), ctx)
    with pytest.raises(TrainerError, match="blocks.1.kernel"):
        train(tiny_mnasnet(**{"blocks.1.kernel": 7}), ctx)
    with pytest.raises(TrainerError, match="task"):
        train(tiny_mnasnet(task="keypoints"), ctx)
    with pytest.raises(TrainerError, match="arch"):
        train({"arch": "no_such_space"}, ctx)
    assert ctx.results == []


def test_augmentation_params_accepted(tmp_path):
    ctx = _ctx(tmp_path, max_epochs=1)
    train(tiny_mnasnet(data_fraction=0.1, num_ops=2, magnitude=9, checkpoint_every=0), ctx)
    assert ctx.results[0]["failed"] == 0 and math.isfinite(ctx.results[0]["train_loss"])
    assert ctx.last_checkpoint is None


def test_efficientnetv2_classification_smoke(tmp_path):
    space = get_space("efficientnetv2")
    cfg = dict(space.default(), arch="efficientnetv2", width_scale=0.25, depth_scale=0.1,
               data_fraction=0.1, latency_repeats=2, latency_warmup=0, latency_target=1.0,
               reward="hard")
    ctx = _ctx(tmp_path, max_epochs=1)
    train(cfg, ctx)
    r = ctx.results[0]
    assert r["failed"] == 0 and r["arch"] == "efficientnetv2"
    assert r["reward"] == pytest.approx(r["val_acc"] * min(1.0 / r["latency_ms"], 1.0))


def test_detection_on_synthetic_shapes_improves_loss(tmp_path):
    cfg = tiny_mnasnet(task="detection", dataset="synthetic-shapes", image_size=64,
                       num_train_images=32, num_val_images=8, batch_size=8, optimizer="adamw",
                       lr=2e-3, head_convs=1, fpn_channels=32, checkpoint_every=0,
                       num_ops=1, magnitude=3)
    ctx = _ctx(tmp_path, max_epochs=3)
    train(cfg, ctx)
    res = ctx.results
    assert [r["failed"] for r in res] == [0, 0, 0]
    for r in res:
        assert {"map", "map_50", "val_loss", "metric"} <= set(r)
        assert 0.0 <= r["map"] <= 1.0 and r["metric"] == r["map"]
    assert res[-1]["train_loss"] < res[0]["train_loss"]
