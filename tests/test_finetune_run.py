"""End-to-end fine-tuning runs on the embedded digits data (tiny timm models, CPU)."""
from __future__ import annotations

import json

import pytest
import torch

from trainers.api import LocalContext
from trainers.local import run_local

torch.set_num_threads(1)

TINY = {"model": "test_resnet", "image_size": 16, "batch-size": 32, "num_workers": 0,
        "train_crop_scale": 0.6}  # upscaled 8x8 digits: a narrower crop range than timm's 0.08


def test_short_run_learns_digits(tmp_path):
    config = {**TINY, "opt": "adamw", "lr": 5e-3, "sched": "cosine", "weight-decay": 1e-4,
              "data_fraction": 0.5}
    results = run_local(config, tmp_path, max_epochs=4, seed=0, echo=False, num_cpus=1)
    assert [r["epoch"] for r in results] == [1, 2, 3, 4]
    for r in results:
        assert set(r) >= {"epoch", "train_loss", "val_loss", "val_acc", "lr", "epoch_time_s",
                          "train_images_per_s", "diverged"}
        assert r["diverged"] == 0 and r["train_images_per_s"] > 0
    assert results[-1]["val_acc"] > 0.6  # chance is 0.1
    assert results[-1]["train_loss"] < results[0]["train_loss"]
    # LocalContext's files
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3, 4]
    header = (tmp_path / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "val_acc" in header and "train_images_per_s" in header
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["epoch_0001", "epoch_0002", "epoch_0003", "epoch_0004"]
    assert any((tmp_path / "tensorboard").iterdir())


def test_checkpoint_every(tmp_path):
    config = {**TINY, "data_fraction": 0.1, "checkpoint_every": 2}
    ctx = LocalContext(tmp_path, seed=0, max_epochs=3, num_cpus=1, echo=False, tensorboard=False)
    from trainers.finetune import train

    train(config, ctx)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["epoch_0002", "epoch_0003"]
    assert ctx.last_checkpoint.name == "epoch_0003"


@pytest.fixture(scope="module")
def source_checkpoint(tmp_path_factory):
    """A tiny model pretrained on digits 0-4 (digits-source), saved as a plain state_dict."""
    from trainers.finetune import FineTuner

    root = tmp_path_factory.mktemp("pretrain")
    ctx = LocalContext(root, seed=0, max_epochs=4, num_cpus=1, echo=False, tensorboard=False)
    ft = FineTuner({**TINY, "dataset": "digits-source", "opt": "adamw", "lr": 5e-3,
                    "checkpoint_every": 0}, ctx)
    ft.fit()
    assert ctx.results[-1]["val_acc"] > 0.6
    path = root / "source.pt"
    torch.save(ft.model.state_dict(), path)
    return path


def test_finetune_pretrained_checkpoint_with_cotuning(tmp_path, source_checkpoint):
    config = {**TINY, "dataset": "digits-target", "pretrained": str(source_checkpoint),
              "cotuning-reg": 1.0, "pct-to-freeze": 0.4, "layer-decay": 0.75, "sp-reg": 1e-3,
              "opt": "adamw", "lr": 2e-3}
    results = run_local(config, tmp_path / "ft", max_epochs=3, seed=1, echo=False, num_cpus=1)
    assert all(r["diverged"] == 0 for r in results)
    assert results[-1]["val_acc"] > 0.5  # 5 classes: chance 0.2


def test_finetune_from_scratch_vs_pretrained_head_start(tmp_path, source_checkpoint):
    """The pretrained backbone transfers: with the backbone frozen and the same head training,
    the pretrained run is well ahead of the one from random weights."""
    config = {**TINY, "dataset": "digits-target", "pct-to-freeze": 1.0, "opt": "adamw", "lr": 1e-2}
    pre = run_local({**config, "pretrained": str(source_checkpoint)}, tmp_path / "pre",
                    max_epochs=2, seed=0, echo=False, num_cpus=1)
    scratch = run_local({**config, "pretrained": False}, tmp_path / "scratch",
                        max_epochs=2, seed=0, echo=False, num_cpus=1)
    assert pre[-1]["val_acc"] > 0.4
    assert pre[-1]["val_acc"] > scratch[-1]["val_acc"] + 0.1, (pre[-1], scratch[-1])


def test_many_knobs_together(tmp_path):
    # 32 px: at 16 px test_resnet's last stage is 1x1, where CPU bf16 backward gave NaNs
    config = {**TINY, "image_size": 32, "data_fraction": 0.3, "linear-probing": True, "stoch-norm": True,
              "layer-decay": 0.65, "delta-reg": 1e-3, "bss-reg": 1e-3, "sp-reg": 1e-3,
              "mixup": 0.2, "cutmix": 0.25, "mixup-prob": 0.5, "smoothing": 0.1, "drop": 0.1,
              "clip-grad": 10.0, "amp": True, "opt": "adamp", "opt-betas": "0.9 0.99",
              "lr": 1e-3, "warmup_epochs": 1, "warmup-lr": 1e-5, "sched": "multistep",
              "decay-epochs": 2, "decay-rate": 0.5, "data-augmentation": "random-augment",
              "ra-num-ops": 2, "ra-magnitude": 9}
    results = run_local(config, tmp_path, max_epochs=4, seed=0, echo=False, num_cpus=1)
    assert len(results) == 4 and all(r["diverged"] == 0 for r in results)
    assert results[0]["lr"] == pytest.approx(1e-5)


@pytest.mark.parametrize("policy", ["v0", "original"])
def test_auto_augment_policies_train_on_digits(tmp_path, policy):
    """timm's AutoAugment v0 asks PIL to posterize to 0 bits at low magnitudes, which crashed
    on digits; one real epoch over the whole train split exercises every sub-policy (25 for v0,
    each drawn ~50 times)."""
    config = {**TINY, "data-augmentation": "auto-augment", "auto-augment": policy,
              "checkpoint_every": 0}
    results = run_local(config, tmp_path, max_epochs=1, seed=0, echo=False, num_cpus=1)
    assert len(results) == 1 and results[0]["diverged"] == 0
    assert results[0]["train_images_per_s"] > 0
