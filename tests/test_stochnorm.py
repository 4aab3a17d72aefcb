"""StochNorm layers and convert_to_stochnorm (trainers/stochnorm.py)."""
from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers.norm_act import BatchNormAct2d
from torch import nn

from trainers.errors import TrainerError
from trainers.stochnorm import (
    StochNorm1d,
    StochNorm2d,
    StochNormAct2d,
    convert_to_stochnorm,
    count_stochnorm,
)

torch.set_num_threads(1)


def _bn_with_stats(c: int = 8, cls=nn.BatchNorm2d) -> nn.Module:
    torch.manual_seed(0)
    bn = cls(c)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1.0, 1.0)
        bn.running_var.uniform_(0.5, 2.0)
    return bn


def _running_norm(x, bn):
    shape = [1, -1] + [1] * (x.ndim - 2)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def _batch_norm_train(x, bn):
    return F.batch_norm(x, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "resnet10t"])
def test_convert_timm_models(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5)
    bns = {n: m for n, m in model.named_modules()
           if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))}
    assert bns, "test model should contain BatchNorm layers"
    # give the running statistics non-default values so copying is observable
    with torch.no_grad():
        for m in bns.values():
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.9, 1.1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        y_before = model(x)

    out = convert_to_stochnorm(model)
    assert out is model
    assert count_stochnorm(model) == len(bns)
    converted = dict(model.named_modules())
    for n in bns:
        assert isinstance(converted[n], (StochNorm2d, StochNorm1d)), n
    # names and values unchanged: checkpoints and group_matcher keep working
    after = model.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        torch.testing.assert_close(after[k], before[k])
    # evaluation = BatchNorm with running statistics = the original model
    with torch.no_grad():
        torch.testing.assert_close(model(x), y_before, rtol=1e-4, atol=1e-5)

    # training mode is stochastic, and the model still trains
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)
    loss = F.cross_entropy(a, torch.tensor([0, 1, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(converted[n].weight.grad.abs().sum() > 0 for n in bns)


def test_batchnormact_keeps_activation_and_drop():
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=5)
    originals = {n: (m.act, m.drop) for n, m in model.named_modules()
                 if isinstance(m, BatchNormAct2d)}
    assert originals
    assert any(not isinstance(act, nn.Identity) for act, _ in originals.values())
    convert_to_stochnorm(model)
    modules = dict(model.named_modules())
    for n, (act, drop) in originals.items():
        new = modules[n]
        assert isinstance(new, StochNormAct2d)
        assert new.act is act and new.drop is drop
    assert not any(isinstance(m, BatchNormAct2d) for m in model.modules())


def test_batchnormact_forward_applies_activation():
    torch.manual_seed(0)
    bna = BatchNormAct2d(6, act_layer=nn.ReLU)
    with torch.no_grad():
        bna.running_mean.uniform_(-1, 1)
        bna.running_var.uniform_(0.5, 2)
        bna.bias.fill_(-0.3)
    x = torch.randn(4, 6, 5, 5)
    bna.eval()
    expected = bna(x)
    sn = convert_to_stochnorm(nn.Sequential(bna))[0]
    sn.eval()
    torch.testing.assert_close(sn(x), expected)
    assert (sn(x) >= 0).all()  # ReLU kept
    torch.testing.assert_close(sn(x), torch.relu(_running_norm(x, sn)))


def test_eval_uses_running_statistics():
    bn = _bn_with_stats(8)
    sn = convert_to_stochnorm(bn)
    assert isinstance(sn, StochNorm2d)
    sn.eval()
    x = torch.randn(5, 8, 4, 4) * 3 + 1
    torch.testing.assert_close(sn(x), _running_norm(x, sn))
    # eval never changes the statistics
    rm = sn.running_mean.clone()
    sn(x)
    torch.testing.assert_close(sn.running_mean, rm)


def test_train_mask_picks_batch_or_running_per_channel():
    bn = _bn_with_stats(64)
    sn = convert_to_stochnorm(bn, p=0.5)
    sn.train()
    x = torch.randn(6, 64, 3, 3) * 2 + 0.5
    running = _running_norm(x, sn)  # statistics before the update
    batch = _batch_norm_train(x, sn)
    torch.manual_seed(0)
    y = sn(x)
    picked_running = torch.tensor(
        [torch.allclose(y[:, c], running[:, c], atol=1e-5) for c in range(64)])
    picked_batch = torch.tensor(
        [torch.allclose(y[:, c], batch[:, c], atol=1e-5) for c in range(64)])
    assert (picked_running ^ picked_batch).all(), "each channel must use exactly one of the two"
    assert 10 < int(picked_running.sum()) < 54, "p=0.5 should pick both kinds"


def test_extreme_p_and_running_stat_update_like_batchnorm():
    x = torch.randn(7, 8, 4, 4) * 2 + 1
    ref = _bn_with_stats(8)
    sn0 = convert_to_stochnorm(_bn_with_stats(8), p=0.0)
    sn1 = convert_to_stochnorm(_bn_with_stats(8), p=1.0)
    expected_running = _running_norm(x, sn1)
    ref.train()
    y_ref = ref(x)
    torch.testing.assert_close(sn0(x), y_ref, rtol=1e-5, atol=1e-5)  # p=0: BatchNorm in training
    torch.testing.assert_close(sn1(x), expected_running)  # p=1: running statistics
    for sn in (sn0, sn1):  # running statistics updated exactly like BatchNorm
        torch.testing.assert_close(sn.running_mean, ref.running_mean)
        torch.testing.assert_close(sn.running_var, ref.running_var)
        assert int(sn.num_batches_tracked) == int(ref.num_batches_tracked) == 1


def test_stochnorm1d_and_cumulative_momentum():
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(12, momentum=None)
    sn = convert_to_stochnorm(bn)
    assert isinstance(sn, StochNorm1d) and sn.momentum is None
    ref = nn.BatchNorm1d(12, momentum=None)
    for _ in range(3):
        x = torch.randn(10, 12) * 3
        sn.train()(x)
        ref.train()(x)
    torch.testing.assert_close(sn.running_mean, ref.running_mean)
    torch.testing.assert_close(sn.running_var, ref.running_var)
    sn.eval()
    x = torch.randn(4, 12)
    torch.testing.assert_close(sn(x), _running_norm(x, sn))
    y = sn.train()(torch.randn(4, 12, 5))  # (N, C, L) input
    assert y.shape == (4, 12, 5)


def test_conversion_keeps_flags_mode_and_skips_converted():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    )
    model[1].weight.requires_grad_(False)
    model.eval()
    convert_to_stochnorm(model, p=0.3)
    assert isinstance(model[1], StochNorm2d) and isinstance(model[2][1], StochNorm1d)
    assert model[1].p == 0.3
    assert not model[1].weight.requires_grad and model[1].bias.requires_grad
    assert not model[1].training
    first = model[1]
    convert_to_stochnorm(model)  # idempotent
    assert model[1] is first and count_stochnorm(model) == 2


def test_invalid_p():
    with pytest.raises(TrainerError, match="p must be a probability"):
        convert_to_stochnorm(nn.BatchNorm2d(3), p=1.5)
    with pytest.raises(TrainerError):
        StochNorm2d(3, p=-0.1)
