"""NAS-FPN space (encoding, size, decode) and the NAS-FPN neck builder."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spaces.library.nasfpn import CellSpec, decode, nasfpn_space, used_parameters
from trainers.nas import build_model
from trainers.nas.nasfpn import NASFPN, MergingCell

torch.set_num_threads(1)
SMALL = dict(fpn_filters=16, fpn_repeats=2, fpn_backbone="test_resnet")
IMG = 64


def test_size_matches_formula():
    expected = 1
    for i in range(2):  # intermediate cells: level x op x input pairs
        expected *= 4 * 2 * math.comb(5 + i, 2)
    expected *= math.factorial(5)  # output level permutation
    for k in range(5):
        expected *= 2 * math.comb(7 + k, 2)
    assert nasfpn_space().size() == expected


def _configs(space, n_sample, n_mutate, seed=0):
    rng = np.random.default_rng(seed)
    cfgs = space.sample(rng, n=n_sample)
    cfgs += [space.mutate(cfgs[i], 0.3, rng) for i in range(n_mutate)]
    cfgs.append(space.crossover(cfgs[0], cfgs[-1], rng))
    return cfgs


def test_decode_structure():
    space = nasfpn_space()
    for cfg in space.sample(np.random.default_rng(1), n=50):
        cells = decode(cfg)
        assert sorted(c.level for c in cells[2:]) == [3, 4, 5, 6, 7]
        for j, c in enumerate(cells):
            a, b = c.inputs
            assert 0 <= a < b < 5 + j
            assert c.op in ("sum", "attention")  # no cell is dead in NAS-FPN
        # every unconsumed intermediate cell is merged into its level's output
        consumed = {i for c in cells for i in (*c.inputs, *c.merged)}
        assert {5, 6} <= consumed
        assert used_parameters(cfg) == set(cfg)


def test_sampled_and_mutated_configs_build_and_train():
    space = nasfpn_space()
    for cfg in _configs(space, 10, 5):
        space.validate(cfg)
        model = build_model("nasfpn", {**cfg, **SMALL}, "classification", num_classes=4)
        feats = model.backbone(torch.randn(2, 3, IMG, IMG))
        assert list(feats) == ["p3", "p4", "p5", "p6", "p7"]
        for lvl, f in zip(range(3, 8), feats.values()):
            side = math.ceil(IMG / 2 ** lvl)
            assert f.shape == (2, 16, side, side)
        out = model(torch.randn(2, 3, IMG, IMG))
        out.sum().backward()
        assert out.shape == (2, 4)


def test_attention_gates_finer_by_coarser_global_max():
    spec = CellSpec(level=4, op="attention", inputs=(0, 1), is_output=False)
    cell = MergingCell(spec, [3, 4, 5, 6, 7], filters=2).eval()
    torch.nn.init.dirac_(cell.conv.weight)
    fine = torch.rand(1, 2, 8, 8)
    coarse = torch.rand(1, 2, 4, 4) - 0.5
    sizes = {3: (8, 8), 4: (4, 4)}
    got = cell([fine, coarse], sizes)
    pooled = torch.nn.functional.max_pool2d(fine, 3, 2, 1)
    gate = torch.sigmoid(coarse.amax(dim=(2, 3), keepdim=True))
    want = cell.bn(cell.conv(torch.relu(coarse + pooled * gate)))
    assert torch.allclose(got, want, atol=1e-6)


def test_neck_rejects_bad_outputs():
    cells = [CellSpec(3, "sum", (0, 1), True)] * 5
    with pytest.raises(ValueError, match="3..7"):
        NASFPN([8] * 5, cells, filters=8)
