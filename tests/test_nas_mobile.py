"""MnasNet / EfficientNetV2 spaces and builders: property tests over sampled and mutated configs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spaces.library import get_space
from spaces.tree import ArchConfig
from trainers.errors import TrainerError
import trainers.nas as nas
from trainers.nas import mobile

SIZE = 32
# efficientnetv2 is 40 layers deep at full depth: the property tests use a quarter of it
DEPTH = {"mnasnet": 1.0, "efficientnetv2": 0.25}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _configs(family: str, n_sampled: int, n_mutated: int, seed: int) -> list[dict]:
    space = get_space(family)
    rng = np.random.default_rng(seed)
    sampled = space.sample(rng, n=n_sampled)
    mutated = [space.mutate(sampled[i % n_sampled], 0.3, rng) for i in range(n_mutated)]
    return sampled + mutated


CASES = [("mnasnet", i, c) for i, c in enumerate(_configs("mnasnet", 16, 8, 0))] + [
    ("efficientnetv2", i, c) for i, c in enumerate(_configs("efficientnetv2", 10, 6, 1))
]


@pytest.mark.parametrize("family,idx,config", CASES, ids=[f"{f}-{i}" for f, i, _ in CASES])
def test_sampled_and_mutated_configs_build_and_train_step(family, idx, config):
    space = get_space(family)
    assert space.is_valid(config)
    arch = ArchConfig(config)
    model = mobile.build_mobile_classifier(family, arch, num_classes=7, width_scale=0.25,
                                           depth_scale=DEPTH[family])
    x = torch.randn(2, 3, SIZE, SIZE)
    y = model(x)
    assert y.shape == (2, 7)
    y.square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    feats = model.backbone.forward_features(x)
    assert sorted(feats) == [1, 2, 3, 4, 5]
    for level, f in feats.items():
        assert f.shape[-1] == SIZE // 2**level
        assert f.shape[1] == model.backbone.feature_channels[level]
    # the builder read every active architecture parameter and nothing inactive
    assert arch.used == set(space.canonical(config))
    # the layers match the chosen repeats
    for spec, stage in zip(model.backbone.specs, model.backbone.stages):
        assert len(stage) == spec.repeats


def _conv_pair():
    space = get_space("mnasnet")
    a = space.default()
    a["blocks.2.op"] = "conv"
    a.pop("blocks.2.expansion", None)
    a.pop("blocks.2.se", None)
    b = dict(a, **{"blocks.2.expansion": 1, "blocks.2.se": 0.25})  # unused values present
    c = dict(a, **{"blocks.2.expansion": 3, "blocks.2.se": 0.0})
    return space, a, b, c


def test_config_id_equal_when_only_unused_params_differ():
    space, a, b, c = _conv_pair()
    assert space.config_id(a) == space.config_id(b) == space.config_id(c)
    ids, counts = set(), set()
    for cfg in (a, b, c):
        arch = ArchConfig(cfg)
        model = mobile.build_mobile_classifier("mnasnet", arch, 10, width_scale=0.25)
        assert "blocks.2.expansion" not in arch.used and "blocks.2.se" not in arch.used
        ids.add(arch.arch_id(space))
        counts.add(sum(p.numel() for p in model.parameters()))
    assert len(ids) == 1 and len(counts) == 1


def test_config_id_differs_when_used_param_differs():
    space = get_space("mnasnet")
    a = space.default()
    b = dict(a, **{"blocks.2.expansion": 3})
    assert space.config_id(a) != space.config_id(b)
    ia, ib = ArchConfig(a), ArchConfig(b)
    mobile.build_backbone("mnasnet", ia, width_scale=0.25)
    mobile.build_backbone("mnasnet", ib, width_scale=0.25)
    assert ia.arch_id(space) != ib.arch_id(space)


def test_expansion_and_se_conditional_on_mbconv():
    space = get_space("mnasnet")
    cfg = space.default()
    cfg["blocks.0.op"] = "conv"
    assert "blocks.0.expansion" not in space.canonical(cfg)
    assert not space.is_active("blocks.0.se", cfg)
    assert space.is_active("blocks.1.se", cfg)
    for sample in space.sample(np.random.default_rng(3), n=20):
        for i in range(7):
            active = sample[f"blocks.{i}.op"] == "mbconv"
            assert (f"blocks.{i}.expansion" in sample) == active
            assert (f"blocks.{i}.se" in sample) == active


def test_space_shapes_and_sizes():
    mn = get_space("mnasnet")
    assert len(mn) == 7 * 6
    assert mn["blocks.0.repeats"].values == (1, 2)
    assert mn["blocks.3.repeats"].values == (3, 4, 5)
    assert all(mn[n].meta and mn[n].meta.get("arch") for n in mn.params)
    per_block = 2 * 3 + 3 * 2 * 2 * 3  # conv: kernel x width ; mbconv: exp x kernel x se x width
    assert mn.size() == (2 * per_block) ** 2 * (3 * per_block) ** 5
    assert mn.size() < mn.size_upper_bound()
    ev = get_space("efficientnetv2")
    assert len(ev) == 6 * 5 + 1
    assert ev.size() == 2 * (2 * 4 * 2 * 2 * 3) ** 6


def test_reference_defaults():
    from spaces.library import efficientnetv2 as ev2
    from spaces.library import mnasnet as mn

    model = mobile.build_backbone("mnasnet", {})
    assert [s.repeats for s in model.specs] == list(mn.REPEATS)
    assert [s.stride for s in model.specs] == list(mn.STRIDES)
    assert [st[-1].out_channels for st in model.stages] == list(mn.FILTERS)
    assert model.out_channels == 1280
    ev = mobile.build_backbone("efficientnetv2", {}, width_scale=0.5, depth_scale=0.2)
    assert [s.op for s in ev.specs] == list(ev2.REFERENCE_OPS)
    assert [s.expansion for s in ev.specs] == list(ev2.REFERENCE_EXPANSIONS)
    assert [s.repeats for s in mobile.decode_arch("efficientnetv2", get_space("efficientnetv2").default())] == list(
        ev2.REPEATS
    )


def test_width_and_activation_choices_take_effect():
    space = get_space("efficientnetv2")
    cfg = space.default()
    wide = dict(cfg, **{"blocks.5.width": 1.25, "activation": "relu"})
    m1 = mobile.build_backbone("efficientnetv2", cfg, depth_scale=0.1)
    m2 = mobile.build_backbone("efficientnetv2", wide, depth_scale=0.1)
    assert m2.feature_channels[5] == 320 and m1.feature_channels[5] == 256
    assert any(isinstance(m, torch.nn.ReLU) for m in m2.modules())
    assert not any(isinstance(m, torch.nn.ReLU) for m in m1.modules())


def test_bad_arguments():
    with pytest.raises(TrainerError, match="unknown mobile family 'resnet'"):
        mobile.build_backbone("resnet", {})
    with pytest.raises(TrainerError, match="width_scale must be > 0, got 0"):
        mobile.build_backbone("mnasnet", {}, width_scale=0)
    with pytest.raises(TrainerError, match="depth_scale applies to efficientnetv2 only"):
        mobile.build_backbone("mnasnet", {}, depth_scale=0.5)
    with pytest.raises(TrainerError, match="num_classes must be >= 1, got 0"):
        mobile.build_mobile_classifier("mnasnet", {}, num_classes=0)


def test_registered_in_nas_builder_registry():
    space = get_space("mnasnet")
    assert {"mnasnet", "efficientnetv2"} <= set(nas.list_builders())
    model = nas.build_model("mnasnet", dict(space.default(), width_scale=0.25), task="classification",
                            num_classes=5)
    assert model(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 5)
    arch = ArchConfig(space.default())  # the builder itself accepts an ArchConfig (records reads)
    nas.get_builder("mnasnet")(arch, "classification", 4, width_scale=0.25)
    assert arch.used == set(space.canonical(space.default()))
    ev = nas.build_model("efficientnetv2", get_space("efficientnetv2").default(), task="classification",
                         num_classes=3, width_scale=0.25, depth_scale=0.2)
    assert ev(torch.randn(2, 3, SIZE, SIZE)).shape == (2, 3)


def test_detection_builder_outputs_pyramid_and_losses():
    space = get_space("mnasnet")
    model = nas.build_model("mnasnet", space.default(), task="detection", num_classes=3,
                            width_scale=0.25, image_size=64, head_convs=1)
    feats = model.backbone(torch.randn(1, 3, 64, 64))
    assert list(feats) == ["p3", "p4", "p5", "p6", "p7"]
    assert [f.shape[-1] for f in feats.values()] == [8, 4, 2, 1, 1]
    model.train()
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]]), "labels": torch.tensor([1])}]
    losses = model(images, targets)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    model.eval()
    with torch.no_grad():
        out = model(images)
    assert set(out[0]) >= {"boxes", "scores", "labels"}
