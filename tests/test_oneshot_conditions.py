"""Conditions of decisions shared by several candidates of one OperationSpace
(trainers/oneshot/space.py) and the MnasNet supernet's kernel, active iff op in {conv, mbconv}."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from orchestrator.oneshot import search_subnets
from spaces.core import Equals, In
from spaces.errors import SpaceError
from trainers.nas.objectives import count_params
from trainers.oneshot import (
    DartsMutator,
    FairMutator,
    FixedMutator,
    OperationSpace,
    RandomMutator,
    SandwichMutator,
    ValueSpace,
    build_subnet,
    decisions,
    ops,
    search_space,
)
from trainers.oneshot.mnasnet import mnasnet_supernet, standalone

SKIP_KW = {"ops": ("conv", "mbconv", "skip"), "filters": (16, 16, 32, 32), "widths": (0.5, 1.0),
           "head_filters": 32}
TWO_BLOCKS_KW = {"ops": ("conv", "mbconv", "skip"), "filters": (16, 32), "strides": (1, 2),
                 "widths": (0.5, 1.0), "expansions": (1, 3), "head_filters": 16}


class SharedUnderThree(nn.Module):
    """op {a, b: convs sharing one unkeyed kernel, c: a conv with its own kernel, d: identity};
    a second op {x: conv reading the first op's shared kernel, y: identity}."""

    def __init__(self) -> None:
        super().__init__()
        k = ValueSpace([1, 3])
        own = ValueSpace([3, 5])
        self.op = OperationSpace({"a": ops.Conv2d(4, 4, k), "b": ops.Conv2d(4, 4, k),
                                  "c": ops.Conv2d(4, 4, own), "d": nn.Identity()})
        self.other = OperationSpace({"x": ops.Conv2d(4, 4, 3), "y": nn.Identity()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.other(self.op(x))


def _conditions_of(space, key: str) -> list:
    return [c for c in space.conditions if c.child == key]


def test_a_mutable_shared_by_candidates_records_each_and_is_listed_once():
    net = SharedUnderThree()
    ds = decisions(net)
    shared = "op.candidates.a.kernel_size_choice"
    assert list(ds) == ["op", shared, "op.candidates.c.kernel_size_choice", "other"]
    assert len(ds[shared].mutables) == 1
    assert ds[shared].condition == ("op", ("a", "b"))
    assert ds["op.candidates.c.kernel_size_choice"].condition == ("op", ("c",))
    space = search_space(net)
    assert _conditions_of(space, shared) == [In(shared, "op", ("a", "b"))]
    assert space.size() == (2 * 2 + 2 + 1) * 2  # (a | b) x 2 kernels, c x 2, d; x other


def test_a_mutable_under_candidates_of_different_ops_or_also_outside_is_always_active():
    net = SharedUnderThree()
    k = net.op.candidates["a"]._args["kernel_size"]
    net.other.candidates["x"] = ops.Conv2d(4, 4, k)
    ds = decisions(net)
    assert ds["op.candidates.a.kernel_size_choice"].condition is None
    net = SharedUnderThree()
    net.k = net.op.candidates["a"]._args["kernel_size"]
    shared = "op.candidates.a.kernel_size_choice"
    assert decisions(net)[shared].condition is None
    assert not _conditions_of(search_space(net), shared)


@pytest.mark.parametrize("op_names,expected", [
    (("conv", "mbconv", "skip"), lambda i: In(f"blocks.{i}.kernel", f"blocks.{i}.op",
                                               ("conv", "mbconv"))),
    (("conv", "skip"), lambda i: Equals(f"blocks.{i}.kernel", f"blocks.{i}.op", "conv")),
])
def test_the_mnasnet_kernel_is_conditional_on_the_ops_that_use_it(op_names, expected):
    space = search_space(mnasnet_supernet(ops=op_names))
    for i in range(4):
        assert _conditions_of(space, f"blocks.{i}.kernel") == [expected(i)]
    assert {k for k in space.names if k.startswith("blocks.0.")} == \
        {"blocks.0.width", "blocks.0.op", "blocks.0.kernel"} | \
        ({"blocks.0.expansion"} if "mbconv" in op_names else set())


def test_a_skip_blocks_configuration_has_no_kernel_and_its_id_ignores_it():
    space = search_space(mnasnet_supernet(**SKIP_KW))
    base = space.canonical({**space.default(), "blocks.2.op": "skip"})
    assert "blocks.2.kernel" not in base and "blocks.2.expansion" not in base
    ids = {space.config_id({**base, "blocks.2.kernel": k}) for k in (3, 5)}
    assert ids == {space.config_id(base)}
    conv = {**base, "blocks.2.op": "conv"}
    assert space.config_id({**conv, "blocks.2.kernel": 3}) != \
        space.config_id({**conv, "blocks.2.kernel": 5})


def test_every_configuration_of_the_space_is_a_different_network():
    net = mnasnet_supernet(**TWO_BLOCKS_KW)
    space = search_space(net)
    nets: dict[str, str] = {}
    for cfg in space.iter_configs():
        nets.setdefault(repr(build_subnet(net, cfg)), space.config_id(cfg))
    assert space.size() == (2 * (2 + 2 * 2 + 1)) ** 2
    assert len(nets) == space.size()


def test_sampled_configurations_never_differ_only_in_an_inactive_kernel():
    net = mnasnet_supernet(**TWO_BLOCKS_KW)
    space = search_space(net)
    by_network: dict[str, set[str]] = {}
    for cfg in space.sample(np.random.default_rng(0), n=120):
        assert all(f"blocks.{i}.kernel" not in cfg for i in range(2)
                   if cfg[f"blocks.{i}.op"] == "skip")
        by_network.setdefault(repr(build_subnet(net, cfg)), set()).add(space.config_id(cfg))
    assert all(len(ids) == 1 for ids in by_network.values())


def _skip_config() -> dict:
    """Block 0 conv 5x5, block 1 a strided skip projection, block 2 mbconv, block 3 a strided
    skip projection to fewer channels; no kernel for the skip blocks."""
    return {"blocks.0.width": 1.0, "blocks.0.op": "conv", "blocks.0.kernel": 5,
            "blocks.1.width": 1.0, "blocks.1.op": "skip",
            "blocks.2.width": 1.0, "blocks.2.op": "mbconv", "blocks.2.kernel": 3,
            "blocks.2.expansion": 6,
            "blocks.3.width": 0.5, "blocks.3.op": "skip"}


def test_build_subnet_and_standalone_agree_on_a_configuration_with_skip_blocks():
    torch.manual_seed(0)
    net = mnasnet_supernet(**SKIP_KW)
    cfg = _skip_config()
    assert search_space(net).canonical(cfg) == cfg
    sub, alone = build_subnet(net, cfg).eval(), standalone(cfg, **SKIP_KW).eval()
    assert count_params(sub) == count_params(alone)
    src, dst = sub.state_dict(), alone.state_dict()
    assert [v.shape for v in src.values()] == [v.shape for v in dst.values()]
    alone.load_state_dict(dict(zip(dst, src.values())))
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.allclose(sub(x), alone(x), atol=1e-5)
        FixedMutator(net, cfg)
        assert torch.allclose(net.eval()(x), sub(x), atol=1e-5)


def test_fixed_mutator_and_standalone_accept_a_skip_block_with_or_without_a_kernel():
    net = mnasnet_supernet(**SKIP_KW)
    cfg = _skip_config()
    with_kernel = {**cfg, "blocks.1.kernel": 5}
    assert FixedMutator(net, with_kernel).config == cfg
    assert FixedMutator(net, cfg).config == cfg
    assert count_params(standalone(with_kernel, **SKIP_KW)) == \
        count_params(standalone(cfg, **SKIP_KW))
    with pytest.raises(SpaceError, match="key 'blocks.0.kernel' is missing"):
        FixedMutator(net, {k: v for k, v in cfg.items() if k != "blocks.0.kernel"})


def _no_inactive_kernel(cfg: dict) -> bool:
    return all(f"blocks.{i}.kernel" not in cfg for i in range(4)
               if cfg[f"blocks.{i}.op"] == "skip")


def test_mutators_never_give_a_skip_block_a_kernel():
    net = mnasnet_supernet(**SKIP_KW)
    space = search_space(net)
    random = RandomMutator(net, seed=1)
    configs = [random.reset() for _ in range(20)]
    configs += [c for _ in range(5) for c in FairMutator(net, seed=2).paths()]
    configs += [c for _ in range(5) for c in SandwichMutator(net, seed=3).paths()]
    darts = DartsMutator(net)
    for i in range(4):
        with torch.no_grad():
            darts.logits(f"blocks.{i}.op")[2] = 1.0
    darts.reset()
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    configs.append(darts.export())
    assert all(_no_inactive_kernel(c) and space.canonical(c) == c for c in configs)
    assert any(c[f"blocks.{i}.op"] == "skip" for c in configs for i in range(4))
    for c in configs:
        assert count_params(build_subnet(net, c)) == count_params(standalone(c, **SKIP_KW))


def test_evolution_over_subnets_keeps_skip_blocks_without_a_kernel():
    net = mnasnet_supernet(**SKIP_KW)
    space = search_space(net)

    def evaluate(configs: list[dict]) -> list[dict]:
        return [{"val_acc": sum(c[f"blocks.{i}.op"] == "skip" for i in range(4)) / 4.0}
                for c in configs]

    rows = search_subnets(space, evaluate, evaluations=40, population_size=8, sample_size=3,
                          batch_size=4, seed=0)
    assert all(_no_inactive_kernel(r["config"]) for r in rows)
    assert max(r["val_acc"] for r in rows) > 0
