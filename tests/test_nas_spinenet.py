"""SpineNet spaces (encoding, sizes, decode) and the SpineNet backbone builder."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spaces.library.spinenet import (
    FAMILIES,
    OUTPUT_LEVELS,
    SPINENET49_BLOCK_SPECS,
    decode,
    rank_combination,
    scaling_space,
    spinenet_space,
    unrank_combination,
    used_parameters,
    with_merges,
)
from trainers.nas import build_model, list_builders
from trainers.nas.spinenet import SpineNet

torch.set_num_threads(1)
SMALL = dict(filter_scale=0.125, endpoint_filters=16)
IMG = 64


def _multinomial(counts):
    n = sum(counts)
    out = math.factorial(n)
    for c in counts:
        out //= math.factorial(c)
    return out


def _expected_size(fam):
    counts = [c for _, c in fam.allocation]
    n = sum(counts)
    size = _multinomial(counts)  # distinct level orders
    size *= len(fam.level_offsets) ** n * len(fam.block_types) ** n
    for i in range(n):  # parents: pairs among the 4 most recent features
        size *= math.comb(min(4, 2 + i), 2)
    size *= math.factorial(5) * len(fam.output_block_types) ** 5
    for k in range(5):
        size *= math.comb(2 + n + k, 2)
    return size


@pytest.mark.parametrize("name", list(FAMILIES))
def test_space_size_matches_formula(name):
    assert spinenet_space(name).size() == _expected_size(FAMILIES[name])


def test_scaling_grid_has_432_points():
    space = scaling_space()
    assert space.size() == 432
    assert len(list(space.iter_configs())) == 432


def test_combination_rank_roundtrip_and_bijection():
    for n, k in [(11, 1), (10, 3), (7, 5), (6, 2)]:
        seen = set()
        for r in range(math.comb(n, k)):
            sub = unrank_combination(r, n, k)
            assert len(sub) == k and list(sub) == sorted(set(sub))
            assert rank_combination(sub, n) == r
            seen.add(sub)
        assert len(seen) == math.comb(n, k)
    with pytest.raises(ValueError, match=r"rank 10 outside \[0, C\(5,2\) = 10\)"):
        unrank_combination(math.comb(5, 2), 5, 2)


def _check_specs(specs, fam):
    n = fam.num_intermediate
    inter, outs = specs[:n], specs[n:]
    assert sorted(s.level for s in outs) == list(OUTPUT_LEVELS)
    alloc = sorted(lvl for lvl, c in fam.allocation for _ in range(c))
    for i, s in enumerate(inter):
        a, b = s.parents
        assert a != b and max(0, 2 + i - 4) <= a < b < 2 + i
        assert 1 <= s.level <= 7
    for k, s in enumerate(outs):
        a, b = s.parents
        assert 0 <= a < b < 2 + n + k and s.block_type in fam.output_block_types
    base = sorted(s.level for s in inter)
    assert len(base) == len(alloc)


def _configs(space, n_sample, n_mutate, seed=0):
    rng = np.random.default_rng(seed)
    cfgs = space.sample(rng, n=n_sample)
    cfgs += [space.mutate(cfgs[i % len(cfgs)], 0.3, rng) for i in range(n_mutate)]
    cfgs.append(space.crossover(cfgs[0], cfgs[1], rng))
    return cfgs


@pytest.mark.parametrize("name", list(FAMILIES))
def test_sampled_and_mutated_configs_build_and_train(name):
    space = spinenet_space(name)
    fam = FAMILIES[name]
    for cfg in _configs(space, 7, 4, seed=len(name)):
        space.validate(cfg)
        specs = decode(cfg, name)
        _check_specs(specs, fam)
        model = build_model(name, {**cfg, **SMALL}, "classification", num_classes=3)
        feats = model.backbone(torch.randn(2, 3, IMG, IMG))
        assert list(feats) == ["p3", "p4", "p5", "p6", "p7"]
        for lvl, (key, f) in zip(OUTPUT_LEVELS, feats.items()):
            side = math.ceil(IMG / 2 ** lvl)
            assert f.shape == (2, 16, side, side), (key, f.shape)
        logits = model(torch.randn(2, 3, IMG, IMG))
        logits.sum().backward()
        assert logits.shape == (2, 3)
        assert all(p.grad is not None for p in model.fc.parameters())


def test_strides_at_divisible_input():
    specs = decode(spinenet_space("spinenet_v2").default(), "spinenet_v2")
    net = SpineNet(specs, endpoint_filters=8, filter_scale=0.125).eval()
    with torch.no_grad():
        feats = net(torch.randn(1, 3, 256, 256))
    assert [f.shape[-1] for f in feats.values()] == [256 // s for s in (8, 16, 32, 64, 128)]


def test_default_is_ascending_order():
    specs = decode(spinenet_space("spinenet").default(), "spinenet")
    assert [s.level for s in specs[:11]] == [2, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5]
    assert [s.level for s in specs[11:]] == [3, 4, 5, 6, 7]


def test_arch_id_ignores_dead_block_types():
    space = spinenet_space("spinenet")
    rng = np.random.default_rng(0)
    found = 0
    for cfg in space.sample(rng, n=300):
        specs = decode(cfg, "spinenet")
        dead = [i for i, s in enumerate(specs) if s.block_type is None]
        if not dead:
            continue
        i = dead[0]
        other = dict(cfg)
        key = f"blocks.{i}.block_type"
        other[key] = "residual" if cfg[key] == "bottleneck" else "bottleneck"
        used = used_parameters(cfg)
        assert key not in used and used == used_parameters(other)
        assert space.config_id(cfg) != space.config_id(other)
        assert space.config_id(cfg, used) == space.config_id(other, used_parameters(other))
        found += 1
        if found >= 3:
            break
    assert found, "no configuration with a dead block among 300 samples"


def test_spinenet49_reference_builds():
    specs = with_merges(SPINENET49_BLOCK_SPECS)
    assert [s.level for s in specs[:10]] == [2, 4, 3, 4, 6, 4, 5, 7, 5, 5]
    assert sum(s.block_type == "residual" for s in specs[:10]) == 4
    net = SpineNet(SPINENET49_BLOCK_SPECS)
    n_params = sum(p.numel() for p in net.parameters())
    assert 15e6 < n_params < 30e6
    small = SpineNet(SPINENET49_BLOCK_SPECS, endpoint_filters=8, filter_scale=0.125).eval()
    with torch.no_grad():
        feats = small(torch.randn(1, 3, 128, 128))
    assert [f.shape[-1] for f in feats.values()] == [16, 8, 4, 2, 1]


def test_scaling_builder_reads_knobs():
    cfg = scaling_space().default()
    cfg.update(filter_scale=0.125 * 0.8 / 0.8, endpoint_filters=16, head_filters=16,
               head_convs=5, image_size=64, block_repeats=2)
    det = build_model("spinenet_scaling", cfg, "detection", num_classes=2)
    assert det.backbone.out_channels == 16
    assert len(det.head.classification_head.conv) == 5


def test_registry():
    names = list_builders("spinenet*")
    assert {"spinenet", "spinenet_v2", "spinenet_mbconv", "spinenet_scaling"} <= set(names)
    with pytest.raises(ValueError, match="spinenet"):
        build_model("spinenet_v3", {}, "classification", 2)


@pytest.mark.parametrize("family", ["spinenet", "spinenet_mbconv"])
def test_scaling_scales_a_searched_architecture(family):
    from spaces.library import get_space
    from spaces.library.spinenet import base_specs, decode

    space = get_space(family)
    arch = space.canonical(space.sample(np.random.default_rng(5)))
    base = {"family": family, **arch}
    assert base_specs(base) == decode(arch, family) != base_specs(None)
    knobs = {**scaling_space().default(), "spinenet_base": base, "endpoint_filters": 16,
             "head_filters": 16, "image_size": 64}
    small = build_model("spinenet_scaling", {**knobs, "filter_scale": 0.125}, "detection", 3)
    wider = build_model("spinenet_scaling", {**knobs, "filter_scale": 0.25}, "detection", 3)
    assert [s.level for s in small.backbone.specs] == [s.level for s in decode(arch, family)]
    assert (sum(p.numel() for p in wider.parameters())
            > sum(p.numel() for p in small.parameters()))
    with torch.no_grad():
        out = small.backbone.eval()(torch.randn(1, 3, 64, 64))
    assert list(out) == ["p3", "p4", "p5", "p6", "p7"]
    with pytest.raises(ValueError, match="not in space"):
        build_model("spinenet_scaling", {**knobs, "spinenet_base": {"nope": 1}}, "detection", 3)


def test_spinenet49_space_trains_at_reduced_width():
    from trainers.nas.settings import split_config

    settings, space, cfg = split_config({"arch": "spinenet49", "task": "detection",
                                         "filter_scale": 0.125, "endpoint_filters": 16})
    assert space.size() == 1 and settings.arch == "spinenet49"
    det = build_model("spinenet49", cfg, "detection", 4)
    assert det.backbone.out_channels == 16
    levels = [s.level for s in det.backbone.specs[:10]]
    assert levels == [2, 4, 3, 4, 6, 4, 5, 7, 5, 5]
