"""The head is everything reset_classifier re-creates (VOLO's aux_head, DLA's 1x1-conv fc);
regularisers on features before dropout; L2-SP's w0 across checkpoints; local and timm-saved
checkpoints; settings that do less than asked are reported."""
from __future__ import annotations

import logging

import pytest
import timm
import torch
from safetensors.torch import save_file

from trainers import freezing
from trainers.api import LocalContext
from trainers.finetune import FineTuner
from trainers.finetune_factory import create_regularizers
from trainers.regularizers import SourceHead, bss_penalty, features_and_logits

torch.set_num_threads(1)

HEADS = {"volo_d1_384": {"aux_head", "head"}, "dla46x_c": {"fc"}}


def _model(name: str, classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"img_size": 32} if name.startswith("volo") else {}
    return timm.create_model(name, num_classes=classes, **kwargs)


def _ctx(tmp_path, seed=0, max_epochs=2, restore_dir=None):
    return LocalContext(tmp_path, seed=seed, max_epochs=max_epochs, num_cpus=1, echo=False,
                        tensorboard=False, restore_dir=restore_dir)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_logits_are_the_models_own_and_the_whole_head_is_head(name):
    model = _model(name).eval()
    x = torch.randn(2, 3, 32, 32)
    feats, logits = features_and_logits(model, x)
    assert torch.allclose(logits, model(x), atol=1e-5)  # VOLO's aux_head term included
    assert feats.ndim == 2 and torch.isfinite(bss_penalty(feats))  # DLA: flattened features
    head = freezing.head_parameter_names(model)
    assert {n.split(".")[0] for n in head} == HEADS[name]
    freezing.apply_trainable(model, freezing.freeze_plan(model, 1.0))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    freezing.apply_trainable(model, set(), head_only=True)  # linear probing
    assert {n for n, p in model.named_parameters() if p.requires_grad} == head
    regs = create_regularizers(
        _cfg(**{"sp-reg": 0.1}), model, set(), None, 5, torch.device("cpu"))
    assert not set(regs.l2sp.names) & head and len(regs.l2sp.names) > 0


def _cfg(**knobs):
    from trainers.config import TrainerConfig

    return TrainerConfig.from_dict(knobs)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_cotuning_source_head_is_the_whole_pretrained_head(name):
    source = _model(name, classes=7).eval()
    x = torch.randn(2, 3, 32, 32)
    expected = source(x)
    src = SourceHead(source)
    source.reset_classifier(5)
    assert src.out_features == 7
    assert torch.allclose(src.logits(source, source.forward_features(x)), expected, atol=1e-5)
    assert source(x).shape == (2, 5)  # the model's own head is back after the swap


def test_delta_is_zero_at_the_start_with_dropout(tmp_path):
    ft = FineTuner({"model": "test_vit", "image_size": 32, "drop": 0.4, "delta-reg": 1.0,
                    "bss-reg": 0.1, "data_fraction": 0.05, "batch-size": 16}, _ctx(tmp_path))
    x, y = next(iter(ft.train_loader))
    ft.model.train()
    _, parts = ft.compute_loss(x, y)
    assert parts["delta"].item() == pytest.approx(0.0, abs=1e-8)
    assert parts["bss"].item() > 0


def test_l2sp_start_weights_come_back_from_the_checkpoint(tmp_path):
    cfg = {"model": "test_resnet", "image_size": 16, "sp-reg": 0.1, "data_fraction": 0.05,
           "batch-size": 16, "lr": 0.05}
    ft = FineTuner(cfg, _ctx(tmp_path / "a"))
    w0 = {k: v.clone() for k, v in ft.l2sp.state_dict().items()}
    ft.train_epoch()
    ft.save(tmp_path / "ckpt", 1)
    resumed = FineTuner(cfg, _ctx(tmp_path / "b", seed=3, restore_dir=tmp_path / "ckpt"))
    for key, value in resumed.l2sp.state_dict().items():
        assert torch.equal(value, w0[key])
    assert resumed.l2sp().item() > 0  # the resumed weights moved away from w0


def test_timm_saved_safetensors_loads_with_head_replaced(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model("test_vit", num_classes=7)  # native 160 px
    path = tmp_path / "model.safetensors"
    save_file(src.state_dict(), str(path))
    ft = FineTuner({"model": "test_vit", "image_size": 32, "pretrained": str(path),
                    "dataset": "digits-target", "cotuning-reg": 1.0, "data_fraction": 0.05,
                    "batch-size": 16}, _ctx(tmp_path / "t"))
    assert ft.model.get_classifier().out_features == 5
    assert torch.equal(ft.model.patch_embed.proj.weight, src.patch_embed.proj.weight)
    assert ft.model.pos_embed.shape[1] != src.pos_embed.shape[1]  # resampled to 32 px
    assert torch.equal(ft.cotuning.source_head.heads["head"].weight, src.head.weight)
    x, y = next(iter(ft.train_loader))
    assert torch.isfinite(ft.train_step(x, y))


def test_settings_that_do_less_are_warned_and_flagged(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    cfg = {"model": "test_vit", "image_size": 32, "stoch-norm": True, "linear-probing": True,
           "warmup_epochs": 5, "data_fraction": 0.05, "batch-size": 16}
    ctx = _ctx(tmp_path, max_epochs=1)
    FineTuner(cfg, ctx).fit()
    flags = {"stoch_norm_noop", "linear_probing_noop", "warmup_never_ends"}
    assert flags <= {k for k, v in ctx.results[0].items() if v == 1}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 3 and any("no BatchNorm" in m for m in warned)
    plain = _ctx(tmp_path / "plain", max_epochs=1)
    FineTuner({"model": "test_resnet", "image_size": 16, "data_fraction": 0.05,
               "batch-size": 16}, plain).fit()
    assert not flags & set(plain.results[0])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_paths_train(tmp_path, dtype):
    from trainers.finetune_factory import create_amp

    ft = FineTuner({"model": "test_resnet", "image_size": 16, "amp": True, "clip-grad": 1.0,
                    "data_fraction": 0.05, "batch-size": 16}, _ctx(tmp_path))
    ft.amp_dtype, ft.scaler = create_amp(ft.cfg, ft.device, dtype)
    assert (ft.scaler is not None) == (dtype == "float16")
    x, y = next(iter(ft.train_loader))
    before = [p.detach().clone() for p in ft.model.parameters()]
    with ft._autocast():
        assert ft.model(x).dtype == getattr(torch, dtype)
    assert torch.isfinite(ft.train_step(x, y))
    assert any(not torch.equal(a, p) for a, p in zip(before, ft.model.parameters()))
    if ft.scaler is not None:
        assert ft.scaler.get_scale() > 0
