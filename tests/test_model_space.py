"""ModelSpace (Archai's ConfigSearchSpace semantics) and its use as a trainer."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from spaces.tree import ArchTree, choice, repeat
from trainers.api import LocalContext
from trainers.errors import TrainerError
from trainers.nas.model_space import ModelSpace

ROOT = Path(__file__).resolve().parents[1]


def _example():
    spec = importlib.util.spec_from_file_location("archai_tree_example", ROOT / "examples" /
                                                  "archai_tree.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class OpModel(nn.Module):
    """Reads ``conv_kernel_size`` only when ``op_type`` is conv (Archai's dedup example)."""

    def __init__(self, arch, in_ch: int = 3):
        super().__init__()
        self.op_type = arch.pick("op_type")
        self.op = (nn.Conv2d(in_ch, 4, arch.pick("conv_kernel_size"), padding="same")
                   if self.op_type == "conv" else nn.Identity())

    def forward(self, x):
        return self.op(x)


OP_TREE = {"op_type": choice(["identity", "conv"]), "conv_kernel_size": choice([1, 3, 5, 7])}


def test_archai_image_classification_tree_num_archs():
    ex = _example()
    ms = ModelSpace(ex.ConvNet, ex.IMAGE_TREE, model_kwargs={"stem_stride": 2}, seed=0)
    assert ms.num_archs == 1_218_719_480_020_992_000
    assert float(ms.num_archs) == 1.218719480020992e18
    assert ms.num_distinct_archs < ms.num_archs
    m = ms.random_sample()
    assert m(torch.randn(2, 3, 64, 64)).ndim == 4


def test_sample_mutate_crossover_give_valid_models_with_ids():
    ex = _example()
    ms = ModelSpace(ex.ConvNet, ex.SMALL_TREE, seed=1)
    space = ms.space
    a, b, c = ms.random_sample(), ms.random_sample(), ms.random_sample()
    for m in (a, ms.mutate(a), ms.crossover([a, b, c]), ms.crossover([a])):
        assert space.is_valid(m.config)
        assert isinstance(m.archid, str) and len(m.archid) == 40
    assert ms.mutate(a).config != a.config
    child = ms.crossover([a, b, c])
    for k, v in child.config.items():
        if all(k in p.config for p in (a, b, c)):
            assert v in [p.config[k] for p in (a, b, c)]


def test_shared_decision_is_one_parameter():
    ex = _example()
    ms = ModelSpace(ex.ConvNet, ex.SMALL_TREE, seed=0)
    assert "kernel" in ms.space.params and "head.kernel_size" not in ms.space.params
    for seed in range(4):
        ms.rng = np.random.default_rng(seed)
        convs = [mod for mod in ms.random_sample().body if isinstance(mod, nn.Conv2d)]
        assert convs[0].kernel_size == convs[-1].kernel_size  # stem and head: one decision
    m = ms.build({**ms.space.default(), "downsample_blocks.0.convs.count": 2})
    block_convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)][1:3]
    assert block_convs[0].kernel_size == block_convs[1].kernel_size  # share=True


def test_unread_parameters_share_archid_and_encoding():
    ms = ModelSpace(OpModel, OP_TREE, seed=0)
    m3 = ms.build({"op_type": "identity", "conv_kernel_size": 3})
    m7 = ms.build({"op_type": "identity", "conv_kernel_size": 7})
    c3 = ms.build({"op_type": "conv", "conv_kernel_size": 3})
    assert m3.archid == m7.archid != c3.archid
    assert np.array_equal(ms.encode(m3, unused=-1.0), ms.encode(m7, unused=-1.0))
    assert not np.array_equal(ms.encode(m3, unused=-1.0), ms.encode(c3, unused=-1.0))
    assert np.isnan(ms.encode(m3)).sum() == 1  # the unread kernel size


def test_save_and_load_arch(tmp_path):
    ms = ModelSpace(OpModel, OP_TREE, seed=0)
    m = ms.build({"op_type": "conv", "conv_kernel_size": 5})
    ms.save_arch(m, tmp_path / "arch.json")
    again = ms.load_arch(tmp_path / "arch.json")
    assert again.config == m.config and again.archid == m.archid


def test_invalid_configuration_is_a_trainer_error():
    ms = ModelSpace(OpModel, OP_TREE)
    with pytest.raises(TrainerError, match="invalid configuration"):
        ms.build({"op_type": "pool", "conv_kernel_size": 3})


def test_model_space_trains_as_a_trainer(tmp_path):
    ex = _example()
    ms = ModelSpace(ex.ConvNet, ex.SMALL_TREE, seed=0)
    ctx = LocalContext(tmp_path, seed=0, max_epochs=1, echo=False)
    cfg = {**ms.space.default(), "dataset": "digits", "image_size": 8, "batch_size": 128,
           "latency_repeats": 1, "latency_warmup": 0, "checkpoint_every": 0,
           "data_fraction": 0.3}
    ms(cfg, ctx)
    ctx.close()
    last = ctx.results[-1]
    assert last["arch"] == "ConvNet" and 0.0 <= last["val_acc"] <= 1.0
    assert len(last["arch_id"]) == 40
    with pytest.raises(TrainerError, match="unknown config key"):
        ms({**cfg, "widht": 3}, LocalContext(tmp_path / "b", seed=0, max_epochs=1, echo=False))


def test_tree_object_accepted():
    ms = ModelSpace(OpModel, ArchTree({"op_type": choice(["conv"]),
                                       "conv_kernel_size": choice([3]),
                                       "extra": repeat({"w": choice([1, 2])}, counts=[1])}))
    assert ms.num_archs == 2
