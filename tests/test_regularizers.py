"""L2-SP, DELTA, BSS and Co-Tuning (trainers/regularizers.py); formulas of REFERENCE.md s.1."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from torch import nn

from trainers.errors import TrainerError
from trainers.regularizers import (
    L2SP,
    CoTuning,
    DeltaRegularizer,
    backbone_parameters,
    bss_penalty,
    compute_relationship,
    features_and_logits,
    head_parameter_names,
    make_frozen_copy,
    pre_logits,
    source_head_of,
)
from trainers.stochnorm import convert_to_stochnorm

torch.set_num_threads(1)


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False, num_classes=4)


def _perturb(model, scale=0.01, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


# ---------------------------------------------------------------- L2-SP

def test_l2sp_zero_at_start_and_exact_after_change(resnet):
    start = {n: p.detach().clone() for n, p in resnet.named_parameters()}
    reg = L2SP(resnet)
    assert float(reg().detach()) == 0.0
    _perturb(resnet)
    head = head_parameter_names(resnet)
    assert head == {"fc.weight", "fc.bias"}
    expected = sum(
        ((p.detach() - start[n]) ** 2).sum() for n, p in resnet.named_parameters() if n not in head
    )
    torch.testing.assert_close(reg(), expected)
    assert set(reg.names) == {n for n, _ in resnet.named_parameters()} - head


def test_l2sp_gradient_points_back_to_start(resnet):
    start = {n: p.detach().clone() for n, p in resnet.named_parameters()}
    reg = L2SP(resnet)
    _perturb(resnet, 0.05)
    dist_before = float(reg().detach())
    resnet.zero_grad()
    reg().backward()
    for n, p in resnet.named_parameters():
        if n in reg.names:
            torch.testing.assert_close(p.grad, 2 * (p.detach() - start[n]))
        else:
            assert p.grad is None  # the head is not regularised
    opt = torch.optim.SGD(resnet.parameters(), lr=0.1)
    opt.step()
    assert float(reg().detach()) < dist_before


def test_l2sp_explicit_params_frozen_params_and_state(resnet):
    conv = resnet.conv1[0].weight  # parameter "conv1.0.weight"
    conv.requires_grad_(False)
    names = {n for n, _ in backbone_parameters(resnet)}
    assert "conv1.0.weight" not in names and "fc.weight" not in names
    assert "conv1.0.weight" in {n for n, _ in backbone_parameters(resnet, trainable_only=False)}
    only = L2SP(resnet, [("conv1.0.weight", conv)])
    _perturb(resnet)
    start_sd = only.state_dict()
    assert list(start_sd) == ["w0__conv1__0__weight"]
    # a rebuilt regulariser restored from the checkpointed state keeps the original w0
    rebuilt = L2SP(resnet, [("conv1.0.weight", conv)])
    assert float(rebuilt().detach()) == 0.0
    rebuilt.load_state_dict(start_sd)
    torch.testing.assert_close(rebuilt(), only())
    assert float(only().detach()) > 0


def test_l2sp_survives_stochnorm_conversion():
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=3)
    reg = L2SP(model)
    convert_to_stochnorm(model)  # replaces BatchNorm parameter tensors
    assert float(reg().detach()) == 0.0
    _perturb(model)
    assert float(reg().detach()) > 0
    reg().backward()
    bn_names = [n for n in reg.names if n.endswith("bn1.weight")]
    assert bn_names and dict(model.named_parameters())[bn_names[0]].grad is not None


def test_l2sp_empty_is_zero():
    assert float(L2SP(nn.Linear(2, 2), params=[])()) == 0.0


# ---------------------------------------------------------------- features and DELTA

@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_vit"])
def test_pre_logits_and_features_and_logits(name):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=6).eval()
    x = torch.randn(2, 3, 160, 160) if "vit" in name else torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = pre_logits(model, x)
        feats, logits = features_and_logits(model, x)
        assert f.shape == (2, model.num_features)
        torch.testing.assert_close(feats, f)
        torch.testing.assert_close(logits, model(x), rtol=1e-4, atol=1e-5)


def test_pre_logits_rejects_non_timm_model():
    with pytest.raises(TrainerError, match="forward_features"):
        pre_logits(nn.Linear(3, 2), torch.randn(1, 3))


def test_make_frozen_copy(resnet):
    resnet.train()
    frozen = make_frozen_copy(resnet)
    assert frozen is not resnet and not frozen.training
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in resnet.parameters())
    with torch.no_grad():
        resnet.fc.weight.add_(1.0)
    assert not torch.equal(frozen.fc.weight, resnet.fc.weight)


def test_delta_zero_for_identical_copy_positive_after_change(resnet):
    resnet.eval()
    delta = DeltaRegularizer(resnet)
    x = torch.randn(4, 3, 64, 64)
    feats = pre_logits(resnet, x)
    assert delta(x, feats).item() == pytest.approx(0.0, abs=1e-10)
    _perturb(resnet, 0.05)
    feats = pre_logits(resnet, x)
    value = delta(x, feats)
    f0 = pre_logits(delta.source, x)
    expected = ((feats - f0) ** 2).sum(dim=1).mean()
    torch.testing.assert_close(value, expected)
    assert value.item() > 0
    value.backward()
    assert resnet.conv1[0].weight.grad is not None
    assert all(p.grad is None for p in delta.source.parameters())
    delta.source.train()  # the copy stays in eval mode whatever happens to it
    delta.source_features(x)
    assert not delta.source.training


def test_delta_penalty_formula():
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    b = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    value = DeltaRegularizer.penalty(a, b)
    assert value.item() == pytest.approx((5.0 + 25.0) / 2)
    value.backward()
    torch.testing.assert_close(a.grad, (a - b).detach())  # d/da mean_b ||a-b||^2 = 2(a-b)/b
    with pytest.raises(TrainerError, match="shapes"):
        DeltaRegularizer.penalty(torch.zeros(2, 3), torch.zeros(2, 4))


# ---------------------------------------------------------------- BSS

@pytest.mark.parametrize("shape, k", [((16, 8), 1), ((8, 32), 1), ((16, 8), 3), ((4, 6), 10)])
def test_bss_matches_reference(shape, k):
    rng = np.random.default_rng(0)
    m = rng.normal(size=shape)
    sigma = np.linalg.svd(m, compute_uv=False)  # descending
    expected = float(np.sum(np.sort(sigma)[: min(k, len(sigma))] ** 2))
    got = bss_penalty(torch.tensor(m, dtype=torch.float32), k=k)
    assert float(got) == pytest.approx(expected, rel=1e-4)


def test_bss_gradient_shrinks_smallest_singular_value():
    torch.manual_seed(0)
    f = torch.randn(12, 6, requires_grad=True)
    before = bss_penalty(f).item()
    bss_penalty(f).backward()
    assert torch.isfinite(f.grad).all()
    with torch.no_grad():
        f2 = f - 0.05 * f.grad
    assert float(bss_penalty(f2)) < before
    assert bss_penalty(torch.randn(4, 3, 2, 2)).ndim == 0  # flattened to (b, -1)
    with pytest.raises(TrainerError, match="k must be"):
        bss_penalty(torch.randn(4, 3), k=0)


# ---------------------------------------------------------------- Co-Tuning

def _toy_loader(n_per_class=5, num_target=3, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_per_class * num_target, dim, generator=g)
    y = torch.arange(num_target).repeat_interleave(n_per_class)
    return [(x[i:i + 4], y[i:i + 4]) for i in range(0, len(y), 4)], x, y


def test_relationship_rows_are_class_mean_probabilities():
    torch.manual_seed(0)
    head = nn.Linear(4, 7)
    loader, x, y = _toy_loader()
    rel = compute_relationship(lambda t: t, head, loader, num_target_classes=3)
    assert rel.shape == (3, 7)
    assert (rel >= 0).all()
    torch.testing.assert_close(rel.sum(dim=1), torch.ones(3))
    with torch.no_grad():
        probs = F.softmax(head(x), dim=1)
    for t in range(3):
        torch.testing.assert_close(rel[t], probs[y == t].mean(0))
    # a class without images gets the uniform row
    rel4 = compute_relationship(lambda t: t, head, loader, num_target_classes=4)
    torch.testing.assert_close(rel4[3], torch.full((7,), 1 / 7))
    with pytest.raises(TrainerError, match="outside"):
        compute_relationship(lambda t: t, head, loader, num_target_classes=2)


def test_cotuning_loss_is_soft_cross_entropy_and_trains():
    torch.manual_seed(0)
    head = nn.Linear(4, 7)
    loader, x, y = _toy_loader()
    co = CoTuning.from_loader(lambda t: t, head, loader, num_target_classes=3)
    assert co.num_target_classes == 3 and "relationship" in co.state_dict()
    feats = torch.randn(5, 4, requires_grad=True)
    yb = torch.tensor([0, 2, 1, 1, 0])
    loss = co.loss(feats, yb)
    log_p = F.log_softmax(head(feats), dim=1)
    expected = torch.stack([-(co.relationship[yb[i]] * log_p[i]).sum() for i in range(5)]).mean()
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert feats.grad is not None and head.weight.grad is not None
    assert torch.equal(co(feats, yb), co.loss(feats, yb))


def test_cotuning_on_timm_model_with_real_features():
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False, num_classes=10).eval()
    source = source_head_of(model)
    assert isinstance(source, nn.Linear) and source.out_features == 10 and source is not model.fc
    model.reset_classifier(3)
    loader = [(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 0])) for _ in range(2)]
    co = CoTuning.from_loader(lambda t: pre_logits(model, t), source, loader, 3)
    torch.testing.assert_close(co.relationship.sum(1), torch.ones(3))
    feats, _ = features_and_logits(model, loader[0][0])
    assert torch.isfinite(co.loss(feats, loader[0][1]))


def test_cotuning_without_source_head_is_clear_error():
    with pytest.raises(TrainerError, match="source classifier"):
        CoTuning(None, torch.ones(2, 3) / 3)
    with pytest.raises(TrainerError, match="source classifier"):
        CoTuning.from_loader(lambda t: t, None, [], 2)
    headless = timm.create_model("test_resnet", pretrained=False, num_classes=0)
    with pytest.raises(TrainerError, match="cotuning-reg"):
        source_head_of(headless)
    with pytest.raises(TrainerError, match="relationship"):
        CoTuning(nn.Linear(4, 7), torch.ones(2, 5) / 5)
