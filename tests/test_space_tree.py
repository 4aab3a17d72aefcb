"""Architecture trees: shared decisions, repeat, usage tracking, Archai's num_archs."""
from __future__ import annotations

import numpy as np
import pytest

from spaces import ArchConfig, ArchTree, SpaceError, choice, repeat


def archai_image_classification_tree() -> ArchTree:
    """The image-classification example of Archai's config-search-space tutorial."""
    return ArchTree({
        "base_num_channels": choice([8, 16, 32, 64]),
        "downsample_blocks": repeat({
            "max_pool_kernel_size": choice([2, 3]),
            "channel_multiplier": choice([1.0, 1.2, 1.4, 1.6, 1.8, 2.0]),
            "convs": repeat({
                "kernel_size": choice([3, 5, 7]),
                "act_fn": choice(["relu", "gelu"]),
            }, counts=[1, 2, 3, 4, 5], share=False),
        }, counts=[1, 2, 3], share=False),
    }, name="archai_example")


def test_archai_example_num_archs_and_exact_size():
    tree = archai_image_classification_tree()
    space = tree.to_space()
    # Archai's arch_param_tree.num_archs printed 1.218719480020992e+18 in its tutorial
    assert tree.num_archs_upper_bound() == space.size_upper_bound()
    assert float(space.size_upper_bound()) == 1.218719480020992e18
    # exact distinct count: a conv is kernel(3) x act(2) = 6; a block is pool(2) x mult(6) x
    # sum_{j=1..5} 6**j convs; the tree is channels(4) x sum_{k=1..3} block**k
    conv = 3 * 2
    block = 2 * 6 * sum(conv ** j for j in range(1, 6))
    expected = 4 * sum(block ** k for k in range(1, 4))
    assert space.size() == expected == tree.num_archs()
    assert space.size() < space.size_upper_bound()


def test_repeat_activity_and_names():
    tree = archai_image_classification_tree()
    space = tree.to_space()
    assert "downsample_blocks.count" in space
    assert "downsample_blocks.2.convs.4.kernel_size" in space
    assert space["base_num_channels"].meta == {"arch": True}
    for cfg in space.sample(np.random.default_rng(0), 500):
        space.validate(cfg)
        n = cfg["downsample_blocks.count"]
        for i in range(3):
            assert (f"downsample_blocks.{i}.convs.count" in cfg) == (i < n)
            if i < n:
                m = cfg[f"downsample_blocks.{i}.convs.count"]
                for j in range(5):
                    assert (f"downsample_blocks.{i}.convs.{j}.act_fn" in cfg) == (j < m)


def test_size_small_tree_matches_enumeration():
    tree = ArchTree({
        "w": choice([1, 2]),
        "layers": repeat({"k": choice([3, 5]), "act": choice(["a", "b", "c"])}, counts=[0, 1, 2]),
    })
    space = tree.to_space()
    configs = list(space.iter_configs())
    assert space.size() == len(configs) == 2 * (1 + 6 + 36)
    assert len({space.config_id(c) for c in configs}) == len(configs)


def test_shared_choice_is_one_decision():
    k = choice([3, 5, 7])
    tree = ArchTree({"stem": {"kernel_size": k}, "conv_kernel_size": k,
                     "num_ch": choice([8, 16, 32])})
    space = tree.to_space()
    assert len(space) == 2 and space.size() == 9
    cfg = tree.sample_config(0)
    assert cfg.pick("stem").pick("kernel_size") == cfg.pick("conv_kernel_size")
    assert cfg.used == {"stem.kernel_size"}


def test_shared_dict_reference():
    block = {"kernel_size": choice([3, 5, 7]), "stride": choice([2, 4])}
    tree = ArchTree({"block1": block, "block2": block, "block3": block})
    assert tree.to_space().size() == 6


def test_repeat_share_true():
    tree = ArchTree({"layers": repeat({"k": choice([1, 3, 5, 7]), "res": choice([False, True])},
                                      counts=[2, 3], share=True)})
    space = tree.to_space()
    assert sorted(space.names) == ["layers.0.k", "layers.0.res", "layers.count"]
    assert space.size() == 2 * 8
    cfg = tree.sample_config(3)
    layers = cfg.pick("layers")
    assert len(layers) == cfg.config["layers.count"]
    assert len({(l.pick("k"), l.pick("res")) for l in layers}) == 1


def test_constants_pass_through():
    tree = ArchTree({"stem_stride": 2, "name": "net", "c": {"k": choice([1, 3])}})
    assert len(tree.to_space()) == 1
    cfg = tree.sample_config(0)
    assert cfg.pick("stem_stride") == 2 and cfg.pick("name") == "net"
    assert cfg.used == set()


def test_pick_records_usage_and_arch_id_ignores_unread():
    tree = ArchTree({"op_type": choice(["identity", "conv"]),
                     "conv_kernel_size": choice([1, 3, 5, 7])})
    space = tree.to_space()

    def build(values):
        cfg = tree.config(values)
        if cfg.pick("op_type") == "conv":
            cfg.pick("conv_kernel_size")
        return cfg

    a = build({"op_type": "identity", "conv_kernel_size": 3})
    b = build({"op_type": "identity", "conv_kernel_size": 7})
    assert a.used == {"op_type"}
    assert space.config_id(a.config, used=a.used) == space.config_id(b.config, used=b.used)
    assert a.arch_id(space) == b.arch_id(space)
    c = build({"op_type": "conv", "conv_kernel_size": 3})
    d = build({"op_type": "conv", "conv_kernel_size": 7})
    assert c.arch_id(space) != d.arch_id(space)


def test_archconfig_without_tree_navigates_prefixes():
    tree = archai_image_classification_tree()
    space = tree.to_space()
    flat = space.sample(5)
    cfg = ArchConfig(flat)
    blocks = cfg.pick("downsample_blocks")
    assert len(blocks) == flat["downsample_blocks.count"]
    for b in blocks:
        for conv in b.pick("convs"):
            assert conv.pick("act_fn") in ("relu", "gelu")
    assert "downsample_blocks.count" in cfg.used
    with pytest.raises(KeyError, match="'nope'"):
        cfg.pick("nope")


def test_tree_rejects_bad_input():
    with pytest.raises(ValueError, match="counts"):
        repeat({"a": choice([1])}, counts=[0])
    with pytest.raises(SpaceError, match="'a.b'"):
        ArchTree({"a.b": choice([1, 2])})
    with pytest.raises(ValueError, match="default"):
        choice([1, 2], default=3)
    with pytest.raises(SpaceError, match="used twice"):
        ArchTree({"x": choice([1, 2], name="k"), "y": choice([3, 4], name="k")})
