"""Each fine-tuning knob has the effect REFERENCE.md section 1 defines."""
from __future__ import annotations

import math

import numpy as np
import pytest
import timm
import torch

from trainers.errors import TrainerError
from trainers import get_trainer, list_trainers, register_trainer
from trainers import freezing
from trainers.api import LocalContext
from trainers.config import TrainerConfig
from trainers.finetune import FineTuner, train
from trainers.optim import create_optimizer, create_scheduler, optimizer_kwargs

torch.set_num_threads(1)

BASE = {"model": "test_resnet", "image_size": 16, "batch-size": 32, "data_fraction": 0.25,
        "lr": 1e-2, "deterministic": True}


def make(tmp_path, max_epochs=2, **knobs) -> FineTuner:
    cfg = {**BASE, **knobs}
    ctx = LocalContext(tmp_path / "trial", seed=0, max_epochs=max_epochs, num_cpus=1, echo=False,
                       tensorboard=False)
    return FineTuner(cfg, ctx)


def batch(ft: FineTuner):
    x, y = next(iter(ft.train_loader))
    return ft._to_device(x), y.to(ft.device)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _assert_trains(ft: FineTuner) -> None:
    """One step gives a finite loss and moves the trainable parameters."""
    before = snapshot(ft.model)
    loss = ft.train_step(*batch(ft))
    assert math.isfinite(loss.item())
    assert any(not torch.equal(p, before[n]) for n, p in ft.model.named_parameters()
               if p.requires_grad)


def opt_param_ids(opt):
    return {id(p) for g in opt.param_groups for p in g["params"]}


# -- config & registry --------------------------------------------------------------------------
def test_config_rejects_unknown_key_with_close_names():
    with pytest.raises(TrainerError, match="pct-to-freeze"):
        TrainerConfig.from_dict({"pct_to_freeze": 0.2})
    with pytest.raises(TrainerError, match="opt"):
        TrainerConfig.from_dict({"opt": "lamb"})
    with pytest.raises(TrainerError, match="opt-betas"):
        TrainerConfig.from_dict({"opt-betas": "0.9"})


def test_config_reads_quicktune_names():
    cfg = TrainerConfig.from_dict({"pct-to-freeze": 0.4, "warmup_epochs": 5, "warmup-lr": 1e-6,
                                   "opt-betas": "0.0 0.99", "opt": "AdamP", "batch-size": 8,
                                   "linear-probing": np.bool_(True), "lr": np.float64(1e-3)})
    assert cfg.pct_to_freeze == 0.4 and cfg.warmup_epochs == 5 and cfg.warmup_lr == 1e-6
    assert cfg.betas == (0.0, 0.99) and cfg.opt == "adamp" and cfg.batch_size == 8
    assert cfg.linear_probing is True and isinstance(cfg.lr, float)
    assert TrainerConfig.from_dict(cfg.to_dict()) == cfg


def test_registry():
    assert get_trainer("finetune") is train
    assert get_trainer("trainers.finetune:train") is train
    assert "finetune" in list_trainers() and "nas" in list_trainers()
    with pytest.raises(TrainerError, match="finetune"):
        get_trainer("finetun")
    register_trainer("dummy-test")(lambda config, ctx: None)
    assert callable(get_trainer("dummy-test"))


# -- freezing ------------------------------------------------------------------------------------
def test_pct_to_freeze_freezes_input_side_and_head_trains(tmp_path):
    ft = make(tmp_path, **{"pct-to-freeze": 0.6})
    model = ft.model
    head = freezing.head_parameter_names(model)
    backbone = freezing.backbone_parameters(model)
    total = sum(p.numel() for _, p in backbone)
    frozen_elems = sum(p.numel() for n, p in backbone if not p.requires_grad)
    assert 0.6 * total <= frozen_elems < 0.6 * total + max(p.numel() for _, p in backbone)
    assert backbone[0][0] in ft.frozen and backbone[-1][0] not in ft.frozen  # input side first
    assert all(model.get_parameter(n).requires_grad for n in head)
    assert opt_param_ids(ft.optimizer) == {id(p) for p in model.parameters() if p.requires_grad}
    before = snapshot(model)
    ft.train_step(*batch(ft))
    for name, p in model.named_parameters():
        if name in ft.frozen:
            assert torch.equal(p, before[name]), name
    assert all(not torch.equal(model.get_parameter(n), before[n]) for n in head)
    assert not torch.equal(model.get_parameter(backbone[-1][0]), before[backbone[-1][0]])


def test_pct_to_freeze_one_is_head_only(tmp_path):
    ft = make(tmp_path, **{"pct-to-freeze": 1.0})
    head = freezing.head_parameter_names(ft.model)
    assert {n for n, p in ft.model.named_parameters() if p.requires_grad} == head


def test_linear_probing_then_backbone_trains_with_optimizer(tmp_path):
    ft = make(tmp_path, max_epochs=4, **{"linear-probing": True, "pct-to-freeze": 0.2, "opt": "adamw"})
    head = freezing.head_parameter_names(ft.model)
    assert ft.probe_epochs == 2 and ft.head_only
    assert {n for n, p in ft.model.named_parameters() if p.requires_grad} == head
    assert len(opt_param_ids(ft.optimizer)) == len(head)
    ft.train_step(*batch(ft))  # head gets Adam state
    head_state = {id(p): ft.optimizer.state[p]["exp_avg"].clone() for p in ft.model.get_classifier().parameters()}
    lr_before = [g["lr"] for g in ft.optimizer.param_groups]
    ft.switch_to_full(2)
    trainable = {id(p) for n, p in ft.model.named_parameters() if n not in ft.frozen}
    assert opt_param_ids(ft.optimizer) == trainable and len(trainable) > len(head)
    for p in ft.model.get_classifier().parameters():  # head's optimiser state carried over
        assert torch.equal(ft.optimizer.state[p]["exp_avg"], head_state[id(p)])
    # schedule position kept: cosine at epoch 2 of 4 is half the base LR
    assert max(g["lr"] for g in ft.optimizer.param_groups) == pytest.approx(0.5 * 1e-2)
    assert lr_before[0] == pytest.approx(1e-2)
    before = snapshot(ft.model)
    ft.train_step(*batch(ft))
    changed = [n for n in before if n not in head and not torch.equal(ft.model.get_parameter(n), before[n])]
    assert changed and all(n not in ft.frozen for n in changed)


def test_linear_probing_fit_trains_backbone(tmp_path):
    ft = make(tmp_path, max_epochs=2, **{"linear-probing": True, "data_fraction": 0.1})
    first_conv = next(iter(freezing.backbone_parameters(ft.model)))[0]
    w0 = ft.model.get_parameter(first_conv).detach().clone()
    ft.fit()
    assert not ft.head_only
    assert not torch.equal(ft.model.get_parameter(first_conv), w0)


# -- layer decay ---------------------------------------------------------------------------------
@pytest.mark.parametrize("with_regulariser", [False, True])
def test_layer_decay_groups_are_geometric(tmp_path, with_regulariser):
    extra = {"sp-reg": 1e-3, "delta-reg": 1e-3} if with_regulariser else {}
    ft = make(tmp_path, **{"layer-decay": 0.65, "weight-decay": 1e-2, **extra})
    groups = ft.optimizer.param_groups
    scales = sorted({round(g["lr_scale"], 12) for g in groups})
    num_layers = len(scales)
    assert num_layers == 6  # test_resnet: stem, 4 stages, head
    expected = sorted(round(0.65 ** (num_layers - 1 - i), 12) for i in range(num_layers))
    assert scales == pytest.approx(expected)
    head_ids = {id(p) for p in ft.model.get_classifier().parameters()}
    for g in groups:
        if any(id(p) in head_ids for p in g["params"]):
            assert g["lr_scale"] == 1.0
        if all(p.ndim <= 1 for p in g["params"]):
            assert g["weight_decay"] == 0.0
        else:
            assert g["weight_decay"] == 1e-2
        assert g["lr"] == pytest.approx(1e-2 * g["lr_scale"])  # the scheduler applies lr_scale


def test_layer_decay_zero_is_off():
    cfg = TrainerConfig(**{"layer_decay": 0.0, "lr": 1e-3})
    assert "layer_decay" not in optimizer_kwargs(cfg)
    model = timm.create_model("test_resnet", num_classes=3)
    opt = create_optimizer(model, cfg)
    assert all("lr_scale" not in g and g["lr"] == 1e-3 for g in opt.param_groups)


# -- model knobs ---------------------------------------------------------------------------------
def test_stoch_norm_and_drop(tmp_path):
    from trainers.stochnorm import count_stochnorm

    ft = make(tmp_path, **{"stoch-norm": True, "drop": 0.3})
    assert count_stochnorm(ft.model) > 0
    assert ft.model.drop_rate == 0.3
    assert all(not isinstance(m, torch.nn.BatchNorm2d) or count_stochnorm(m) for m in ft.model.modules())
    _assert_trains(ft)  # with StochNorm
    plain = make(tmp_path, **{"stoch-norm": False})
    assert count_stochnorm(plain.model) == 0 and plain.model.drop_rate == 0.0


# -- regularisers --------------------------------------------------------------------------------
@pytest.mark.parametrize("knob,part", [("sp-reg", "sp"), ("delta-reg", "delta"), ("bss-reg", "bss")])
def test_regulariser_enters_loss(tmp_path, knob, part):
    alpha = 0.1
    ft = make(tmp_path, **{knob: alpha, "pct-to-freeze": 0.2})
    x, y = batch(ft)
    ft.train_step(x, y)  # move away from w0 so L2-SP / DELTA are non-zero
    ft.model.eval()  # no BatchNorm-statistics noise between the two forwards
    loss, parts = ft.compute_loss(x, y)
    assert part in parts and parts[part].item() > 0
    assert loss.item() == pytest.approx(parts["task"].item() + alpha * parts[part].item(), rel=1e-4)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in ft.model.named_parameters() if p.grad is not None}
    # same batch without the regulariser: the gradients differ
    ft.model.zero_grad(set_to_none=True)
    saved, ft.cfg = ft.cfg, TrainerConfig.from_dict({**ft.cfg.to_dict(), knob: 0.0})
    ft.l2sp = ft.l2sp if knob != "sp-reg" else None
    ft.delta = ft.delta if knob != "delta-reg" else None
    loss0, parts0 = ft.compute_loss(x, y)
    loss0.backward()
    assert part not in parts0
    assert any(not torch.allclose(p.grad, grads[n]) for n, p in ft.model.named_parameters()
               if p.grad is not None)
    ft.cfg = saved


def test_l2sp_excludes_head_and_frozen(tmp_path):
    ft = make(tmp_path, **{"sp-reg": 1e-2, "pct-to-freeze": 0.4})
    names = set(ft.l2sp.names)
    assert names and not names & freezing.head_parameter_names(ft.model)
    assert not names & ft.frozen


def test_cotuning_needs_source_head(tmp_path):
    with pytest.raises(TrainerError, match="cotuning-reg"):
        make(tmp_path, **{"cotuning-reg": 1.0})


def test_cotuning_with_pretrained_checkpoint(tmp_path):
    torch.manual_seed(0)
    src = timm.create_model("test_resnet", num_classes=7)  # a 7-class "source task"
    ckpt = tmp_path / "src.pt"
    torch.save(src.state_dict(), ckpt)
    ft = make(tmp_path, **{"cotuning-reg": 2.0, "pretrained": str(ckpt), "dataset": "digits-target"})
    assert ft.model.get_classifier().out_features == 5  # classifier replaced
    # backbone weights came from the checkpoint
    assert torch.equal(ft.model.conv1[0].weight.cpu(), src.conv1[0].weight)
    rel = ft.cotuning.relationship
    assert rel.shape == (5, 7) and torch.allclose(rel.sum(1), torch.ones(5), atol=1e-5)
    assert torch.equal(ft.cotuning.source_head.heads["fc"].weight.detach().cpu(), src.fc.weight)
    assert {id(p) for p in ft.cotuning.source_head.parameters()} <= opt_param_ids(ft.optimizer)
    x, y = batch(ft)
    ft.model.eval()
    loss, parts = ft.compute_loss(x, y)
    assert parts["cotuning"].item() > 0
    assert loss.item() == pytest.approx(parts["task"].item() + 2.0 * parts["cotuning"].item(), rel=1e-4)


# -- mixing & loss -------------------------------------------------------------------------------
def _fraction_mixed(ft, n=200):
    x, y = batch(ft)
    mixed = 0
    for _ in range(n):
        _, t = ft.mix(x, y)
        assert t.shape == (len(y), ft.num_classes)
        mixed += bool(t.max() < 1.0 - 1e-6)
    return mixed / n


def test_mixup_probability_and_soft_targets(tmp_path):
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    ft = make(tmp_path, **{"mixup": 1.0, "mixup-prob": 0.5})
    assert isinstance(ft.criterion, SoftTargetCrossEntropy)
    np.random.seed(0)
    assert 0.35 < _fraction_mixed(ft) < 0.65
    ft = make(tmp_path, **{"cutmix": 1.0, "mixup-prob": 1.0})
    assert _fraction_mixed(ft, 50) > 0.9
    ft = make(tmp_path, **{"mixup": 0.4, "cutmix": 0.5, "mixup-prob": 0.25})
    assert 0.1 < _fraction_mixed(ft) < 0.4
    assert ft.mixup_fn.switch_prob == 0.5 and ft.mixup_fn.mode == "batch"
    _assert_trains(ft)
    smooth = make(tmp_path, **{"smoothing": 0.1})
    assert smooth.mixup_fn is None and isinstance(smooth.criterion, LabelSmoothingCrossEntropy)
    assert smooth.criterion.smoothing == 0.1
    plain = make(tmp_path)
    assert plain.mixup_fn is None and type(plain.criterion) is torch.nn.CrossEntropyLoss


def test_mixup_with_smoothing_targets(tmp_path):
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    ft = make(tmp_path, **{"mixup": 1.0, "mixup-prob": 0.0, "smoothing": 0.1})
    assert ft.mixup_fn is None  # mixup-prob 0 never mixes: smoothing goes to the criterion
    assert isinstance(ft.criterion, LabelSmoothingCrossEntropy) and ft.criterion.smoothing == 0.1
    ft = make(tmp_path, **{"mixup": 1.0, "mixup-prob": 1.0, "smoothing": 0.1})
    assert isinstance(ft.criterion, SoftTargetCrossEntropy) and ft.mixup_fn.label_smoothing == 0.1
    x, y = batch(ft)
    _, soft = ft.mixup_fn(x, y)
    k = soft.shape[1]  # smoothed one-hot rows mixed: each sums to 1, never below 0.1 / k
    assert torch.allclose(soft.sum(dim=1), torch.ones(len(y)))
    assert soft.min().item() == pytest.approx(0.1 / k) and soft.max().item() < 1 - 0.1 + 0.1 / k


# -- optimisers & schedules ----------------------------------------------------------------------
@pytest.mark.parametrize("opt,cls,check", [
    ("sgd", torch.optim.SGD, {"nesterov": True, "momentum": 0.9}),
    ("momentum", torch.optim.SGD, {"nesterov": False, "momentum": 0.95}),
    ("adam", torch.optim.Adam, {"betas": (0.0, 0.99)}),
    ("adamw", torch.optim.AdamW, {"betas": (0.0, 0.99)}),
    ("adamp", None, {"betas": (0.0, 0.99)}),
])
def test_optimizers(opt, cls, check):
    from timm.optim import AdamP

    cfg = TrainerConfig.from_dict({"opt": opt, "momentum": 0.95, "opt-betas": "0.0 0.99",
                                   "lr": 5e-4, "weight-decay": 1e-4})
    model = timm.create_model("test_resnet", num_classes=3)
    optimizer = create_optimizer(model, cfg)
    assert type(optimizer) is (cls or AdamP)
    for key, value in check.items():
        assert optimizer.defaults[key] == value
    assert optimizer.defaults["lr"] == 5e-4
    wd = {g["weight_decay"] for g in optimizer.param_groups}
    assert wd == {0.0, 1e-4}  # 1-D params are not decayed


def lr_curve(cfg_dict, epochs=12, metrics=None):
    cfg = TrainerConfig.from_dict({"lr": 0.1, **cfg_dict})
    model = timm.create_model("test_resnet", num_classes=3)
    opt = create_optimizer(model, cfg)
    sched = create_scheduler(opt, cfg, epochs)
    lrs = []
    for e in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step(e + 1, metric=None if metrics is None else metrics[e])
    return type(sched).__name__, lrs


def test_cosine_schedule_with_warmup():
    name, lrs = lr_curve({"sched": "cosine", "warmup_epochs": 2, "warmup-lr": 1e-3}, epochs=10)
    assert name == "CosineLRScheduler"
    assert lrs[0] == pytest.approx(1e-3) and lrs[1] == pytest.approx(1e-3 + (0.1 - 1e-3) / 2)
    for e in range(2, 10):
        assert lrs[e] == pytest.approx(0.5 * 0.1 * (1 + math.cos(math.pi * e / 10)))


def test_step_and_multistep_schedules():
    name, lrs = lr_curve({"sched": "step", "decay-epochs": 3, "decay-rate": 0.5}, epochs=10)
    assert name == "StepLRScheduler"
    assert lrs == pytest.approx([0.1 * 0.5 ** (e // 3) for e in range(10)])
    name, lrs = lr_curve({"sched": "multistep", "decay-epochs": 4, "decay-rate": 0.1}, epochs=30)
    assert name == "MultiStepLRScheduler"
    # decays at epochs 4, 12, 28 (intervals doubling), where step decays every 4 epochs
    assert lrs == pytest.approx([0.1 * 0.1 ** sum(e >= m for m in (4, 12, 28)) for e in range(30)])


@pytest.mark.parametrize("decay_epochs", [10, 20])
@pytest.mark.parametrize("decay_rate", [0.1, 0.5])
def test_multistep_differs_from_step_over_the_space(decay_epochs, decay_rate):
    knobs = {"decay-epochs": decay_epochs, "decay-rate": decay_rate}
    _, step = lr_curve({"sched": "step", **knobs}, epochs=50)
    _, multi = lr_curve({"sched": "multistep", **knobs}, epochs=50)
    assert step[decay_epochs] == multi[decay_epochs] == pytest.approx(0.1 * decay_rate)
    assert step != pytest.approx(multi)


def test_plateau_schedule_watches_val_acc():
    metrics = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7, 0.7, 0.7, 0.7]
    name, lrs = lr_curve({"sched": "plateau", "patience-epochs": 2, "decay-rate": 0.5},
                         epochs=10, metrics=metrics)
    assert name == "PlateauLRScheduler"
    # no improvement after epoch 2 (0-based 1): three bad epochs > patience 2 -> halve
    assert lrs[:5] == pytest.approx([0.1] * 5)
    assert lrs[5] == pytest.approx(0.05)
    assert min(lrs) < 0.1 and all(b <= a for a, b in zip(lrs, lrs[1:]))


# -- amp, clipping, divergence, stopping ---------------------------------------------------------
def test_amp_runs_in_bfloat16_on_cpu(tmp_path):
    ft = make(tmp_path, **{"amp": True})
    assert ft.amp_dtype == torch.bfloat16 and ft.scaler is None
    x, y = batch(ft)
    with ft._autocast():
        assert ft.model(x).dtype == torch.bfloat16
    loss = ft.train_step(x, y)
    assert torch.isfinite(loss)


def test_clip_grad_caps_global_norm(tmp_path):
    def norm(ft):
        return torch.linalg.vector_norm(
            torch.stack([p.grad.norm() for p in ft.trainable_parameters() if p.grad is not None]))

    free = make(tmp_path, **{"clip-grad": 0.0, "smoothing": 0.0})
    free.train_step(*batch(free))
    raw = norm(free).item()
    clip = raw / 4
    cfg = {"clip-grad": clip}
    ft = make(tmp_path, **cfg)
    ft.train_step(*batch(ft))
    assert norm(ft).item() == pytest.approx(clip, rel=1e-3)


def test_divergence_reports_once_and_returns(tmp_path):
    """A learning rate of 1e12 blows the weights up within the first epoch."""
    ctx = LocalContext(tmp_path / "t", seed=0, max_epochs=3, num_cpus=1, echo=False, tensorboard=False)
    FineTuner({**BASE, "data_fraction": 0.1, "lr": 1e12, "opt": "sgd"}, ctx).fit()
    assert len(ctx.results) == 1
    r = ctx.results[0]
    assert r["diverged"] == 1 and r["val_acc"] == 0.0 and r["val_loss"] == 1e9


def test_should_stop_between_epochs(tmp_path):
    ctx = LocalContext(tmp_path / "t", seed=0, max_epochs=3, num_cpus=1, echo=False, tensorboard=False)
    ctx.request_stop()
    train({**BASE, "data_fraction": 0.1}, ctx)
    assert len(ctx.results) == 1 and ctx.results[0]["diverged"] == 0


def test_data_augmentation_transform_is_used(tmp_path):
    ft = make(tmp_path, **{"data-augmentation": "random-augment", "ra-num-ops": 2, "ra-magnitude": 17})
    train_tf, val_tf = repr(ft.data.train_ds.transform), repr(ft.data.val_ds.transform)
    # timm's training pipeline with the op in the secondary stage (replacing ColorJitter)
    assert train_tf.index("RandomResizedCrop") < train_tf.index("RandAugment")
    assert "ColorJitter" not in train_tf and "RandAugment" not in val_tf
    assert "CenterCrop" in val_tf
    plain = make(tmp_path / "p", **{"data-augmentation": "none"})
    assert "ColorJitter" in repr(plain.data.train_ds.transform)


def test_bss_svd_failure_counts_as_divergence(tmp_path, monkeypatch):
    """With a learning rate of 1e12 the features turn non-finite and BSS's real SVD raises."""
    failures = []
    svdvals = torch.linalg.svdvals

    def counting_svdvals(x):
        try:
            return svdvals(x)
        except torch.linalg.LinAlgError:
            failures.append(x.shape)
            raise

    monkeypatch.setattr(torch.linalg, "svdvals", counting_svdvals)
    ctx = LocalContext(tmp_path / "t", seed=0, max_epochs=2, num_cpus=1, echo=False, tensorboard=False)
    FineTuner({**BASE, "data_fraction": 0.1, "bss-reg": 1e-3, "lr": 1e12, "opt": "sgd"}, ctx).fit()
    assert failures, "the SVD never failed"
    assert [r["diverged"] for r in ctx.results] == [1]
