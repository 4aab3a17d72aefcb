"""Composed networks (trainers.compose): faithfulness to timm's ResNets and Vega's descriptions,
searchable fields, binary codes, and errors that name file, path and closest names."""
from __future__ import annotations

import re
import textwrap

import pytest
import timm
import torch

from trainers.compose import BLOCKS, build_network, network_space, register_block
from trainers.compose.space import binary_codes
from trainers.errors import TrainerError

VEGA_FINE = textwrap.dedent("""\
    search_space:
            type: FineGrainedSpace
            modules: ['init', 'bottlelayer', 'pooling', 'view', 'linear']
            init:
                type: InitialBlock
                init_plane: 64
            bottlelayer:
                type: BasicLayer
                in_plane: 64
                expansion: 4
                block:
                    type: BottleneckBlock
                layer_reps: [3, 4, 6, 3]
            pooling:
                type: AdaptiveAvgPool2d
                output_size: !!python/tuple [1, 1]
            view:
                type: View
            linear:
                type: Linear
                in_features: 2048
                out_features: 10
    """)

VARIANT = {
    "modules": ["resnet18"],
    "hyper_parameters": {"resnet18.doublechannel": [0, 0, 1, 0, 1, 0, 1, 0],
                         "resnet18.downsample": [0, 0, 1, 0, 1, 0, 1, 0]},
    "resnet18": {"type": "ResNetVariant", "base_depth": 18, "base_channel": 8,
                 "doublechannel": [0, 0, 1, 0, 1, 0, 1, 0],
                 "downsample": [0, 0, 1, 0, 1, 0, 1, 0]},
}


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_vega_fine_grained_resnet50_has_timm_resnet50_parameter_count(tmp_path):
    path = tmp_path / "resnet50.yaml"
    path.write_text(VEGA_FINE)
    net = build_network(path)
    assert _params(net) == 23_528_522
    assert list(dict(net.named_children())) == ["init", "bottlelayer", "pooling", "view", "linear"]
    assert net(torch.randn(1, 3, 64, 64)).shape == (1, 10)


@pytest.mark.parametrize("depth,count", [(18, 11_181_642), (34, 21_289_802), (50, 23_528_522)])
def test_coarse_resnet_matches_timm(depth, count):
    net = build_network({"modules": ["resnet"],
                         "resnet": {"type": "ResNet", "depth": depth, "num_class": 10}})
    assert _params(net) == count


def test_timm_counts_are_the_reference():
    assert _params(timm.create_model("resnet18", num_classes=10)) == 11_181_642


def test_resnet_variant_builds_for_every_valid_code():
    space = network_space(VARIANT)
    dc, ds = space["resnet18.doublechannel"], space["resnet18.downsample"]
    assert len(dc.choices) == len(binary_codes(8, 3)) == 56
    assert (dc.default, ds.default) == ("00101010", "00101010")
    pairs = [(a, ds.default) for a in dc.choices] + [(dc.default, b) for b in ds.choices]
    with torch.device("meta"):  # shapes only: every code of each vector, built and run
        x = torch.empty(1, 3, 16, 16)
        for a, b in pairs:
            net = build_network(VARIANT, {"resnet18.doublechannel": a,
                                          "resnet18.downsample": b})
            assert net(x).shape == (1, 10)
            assert net[0][-1].in_features == 8 * 2 ** 3  # three doublings of base_channel 8


def test_binary_code_domains():
    assert len(binary_codes(4)) == 16
    assert binary_codes(4, 1) == ("0001", "0010", "0100", "1000")
    desc = {**VARIANT, "hyper_parameters": {
        "resnet18.downsample": {"type": "binary_code", "range": [8]},
        "resnet18.base_channel": [4, 8]}}
    space = network_space(desc)
    assert space.size() == 256 * 2
    assert type(space["resnet18.base_channel"]).__name__ == "Ordinal"


def test_space_works_with_variation_and_ids():
    space = network_space(VARIANT)
    cfg = space.sample(0)
    assert space.is_valid(space.mutate(cfg, prob=1.0, rng=1))
    assert all(space.is_valid(n) for n in space.neighbours(cfg))
    assert space.config_id(cfg) == space.config_id(dict(cfg))


def test_repeat_items_scalars_and_per_repetition_lists():
    desc = {"modules": ["stem", "body"],
            "stem": {"type": "SmallInputInitialBlock", "init_plane": 8},
            "body": {"type": "Repeat", "num_reps": 3, "ref": {"type": "BasicBlock"},
                     "items": {"inchannel": [8, 16], "outchannel": 16, "stride": [2, 1]}}}
    net = build_network(desc)
    blocks = list(net.body)
    assert len(blocks) == 3 and [b.out_channels for b in blocks] == [16, 16, 16]
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 16, 8, 8)


def test_combinators_add_and_concat():
    conv = {"type": "ConvBnAct", "in_channels": 3, "out_channels": 4}
    desc = {"modules": ["cat", "add"],
            "cat": {"type": "Concat", "modules": [conv, conv]},
            "add": {"type": "Add", "modules": [{"type": "Identity"},
                                               {"type": "MBConv", "in_channels": 8, "filters": 8}]}}
    assert build_network(desc)(torch.randn(1, 3, 8, 8)).shape == (1, 8, 8, 8)


def test_user_block_registered_with_the_one_registry():
    @register_block("TwiceTest")
    class Twice(torch.nn.Module):
        def __init__(self, scale: float = 2.0):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return x * self.scale

    assert "twicetest" in BLOCKS
    net = build_network({"modules": ["t"], "t": {"type": "TwiceTest", "scale": 3.0}})
    assert float(net(torch.ones(1))) == 3.0


@pytest.mark.parametrize("desc,needles", [
    ({"modules": ["a"], "a": {"type": "BotleneckBlock", "inchannel": 3, "outchannel": 4}},
     ["a.type", "'BotleneckBlock'", "bottleneckblock"]),
    ({"modules": ["a"], "a": {"type": "InitialBlock", "init_plan": 8}},
     ["a.init_plan", "'init_plane'"]),
    ({"modules": ["a"], "a": {"type": "InitialBlock"},
      "hyper_parameters": {"a.init_plne": [8, 16]}}, ["a.init_plne", "points nowhere",
                                                      "'init_plane'"]),
    ({"modules": ["a"], "a": {"type": "Repeat", "num_reps": 2, "ref": {"type": "BasicBlock"},
                              "items": {"inchannel": [3, 4, 4], "outchannel": 4}}},
     ["a.items.inchannel", "3 values", "num_reps=2"]),
    ({"modules": ["a", "b"], "a": {"type": "InitialBlock"}}, ["modules", "'b'"]),
])
def test_bad_descriptions_name_file_path_and_close_names(tmp_path, desc, needles):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(desc))
    with pytest.raises(TrainerError) as err:
        network_space(path)
        build_network(path)
    msg = str(err.value)
    assert str(path) in msg
    for needle in needles:
        assert needle in msg, msg


def test_configuration_outside_the_space_is_rejected():
    with pytest.raises(TrainerError, match="not a searchable field"):
        build_network(VARIANT, {"resnet18.base_chanel": 8})
    with pytest.raises(TrainerError, match="invalid configuration"):
        build_network(VARIANT, {"resnet18.doublechannel": "11111111"})


def test_space_show_prints_fields_domains_size_and_default_params(tmp_path, capsys):
    import yaml

    from orchestrator.cli import main

    desc = {"modules": ["stem", "body", "head"],
            "stem": {"type": "SmallInputInitialBlock", "init_plane": 4},
            "body": {"type": "BasicBlock", "inchannel": 4, "outchannel": 4, "stride": 1},
            "head": {"type": "LinearClassificationHead", "base_channel": 4, "num_class": 10},
            "hyper_parameters": {"body.stride": [1, 2]}}
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(desc))
    assert main(["space", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"body\.stride\s+ordinal\s+<1, 2>", out)
    assert re.search(r"size \(distinct valid configurations\): 2\b", out)
    expected = sum(p.numel() for p in build_network(desc).parameters())
    assert f"default network: {expected:,} parameters" in out
