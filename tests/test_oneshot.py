"""One-shot NAS (trainers/oneshot): mutables, keys, search_space, mutators, build_subnet,
BatchNorm recalibration and the supernet trainer's checkpoint/resume."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spaces.errors import SpaceError
from trainers.api import LocalContext
from trainers.errors import TrainerError
from trainers.nas.objectives import count_params
from trainers.oneshot import (
    DartsMutator,
    FairMutator,
    FixedMutator,
    InputSpace,
    OperationSpace,
    RandomMutator,
    SandwichMutator,
    ValueSpace,
    build_subnet,
    decisions,
    ops,
    search_space,
)
from trainers.oneshot.evaluate import SubnetEvaluator
from trainers.oneshot.mnasnet import mnasnet_supernet, standalone


class Toy(nn.Module):
    """op {a: conv with kernel choice, b: identity}; two convs sharing the key 'width';
    an input choice over three tensors."""

    def __init__(self, shared_choices=(8, 16)):
        super().__init__()
        self.width = ValueSpace(list(shared_choices), key="width")
        self.other_width = ValueSpace(list(shared_choices), key="width")
        self.conv1 = ops.Conv2d(3, self.width, 3)
        self.conv2 = ops.Conv2d(self.width, self.other_width, 1)
        k = ValueSpace([3, 5])
        self.op = OperationSpace({"a": ops.Conv2d(self.other_width, self.other_width, k),
                                  "b": nn.Identity()})
        self.pick = InputSpace(choose_from=["c1", "c2", "op"], n_chosen=2)

    def forward(self, x):
        a = self.conv1(x)
        b = self.conv2(a)
        c = self.op(b)
        return self.pick([a, b, c])


def test_default_keys_follow_module_paths_and_shared_keys_are_one_decision():
    net = Toy()
    ds = decisions(net)
    assert list(ds) == ["width", "op", "op.candidates.a.kernel_size_choice", "pick"]
    assert len(ds["width"].mutables) == 2
    space = search_space(net)
    assert set(space.params) == set(ds)
    FixedMutator(net, {"width": 16, "op": "a", "op.candidates.a.kernel_size_choice": 5,
                       "pick": "c1+op"})
    assert net.width.value == 16 and net.other_width.value == 16
    assert net(torch.randn(2, 3, 8, 8)).shape == (2, 16, 8, 8)


def test_shared_key_with_different_choices_is_an_error():
    net = Toy()
    net.other_width = ValueSpace([8, 32], key="width")
    with pytest.raises(SpaceError, match="key 'width' is shared"):
        decisions(net)


def test_search_space_size_conditions_and_config_id():
    net = Toy()
    space = search_space(net)
    kkey = "op.candidates.a.kernel_size_choice"
    # width 2 x (op a with 2 kernels + op b) x C(3, 2) input subsets
    assert space.size() == 2 * 3 * 3
    assert space.params["pick"].values == ("c1+c2", "c1+op", "c2+op")
    assert not space.is_active(kkey, {"width": 8, "op": "b", "pick": "c1+c2"})
    a = {"width": 8, "op": "b", "pick": "c1+c2", kkey: 3}
    b = {"width": 8, "op": "b", "pick": "c1+c2", kkey: 5}
    assert space.config_id(a) == space.config_id(b)
    assert space.config_id(a) != space.config_id({**a, "op": "a"})
    any_subset = InputSpace(3, n_chosen=None)
    assert len(any_subset.choices) == 7


def test_fixed_mutator_is_strict():
    net = Toy()
    good = {"width": 8, "op": "b", "pick": "c1+c2"}
    with pytest.raises(SpaceError, match="key 'pick' is missing"):
        FixedMutator(net, {"width": 8, "op": "b"})
    with pytest.raises(SpaceError, match=r"unknown keys \['nope'\]"):
        FixedMutator(net, {**good, "nope": 1})
    with pytest.raises(SpaceError, match="'width': 12 is not one of"):
        FixedMutator(net, {**good, "width": 12})
    with pytest.raises(SpaceError, match="key 'op.candidates.a.kernel_size_choice' is missing"):
        FixedMutator(net, {**good, "op": "a"})
    loose = FixedMutator(net, {"width": 16, "nope": 1}, strict=False)
    assert loose.config["width"] == 16 and "nope" not in loose.config


def test_sliced_ops_export_centre_cropped_and_sliced_weights():
    k = ValueSpace([3, 5])
    c = ValueSpace([4, 8])
    conv = ops.Conv2d(3, c, k, bias=True)
    k.set_choice(3)
    c.set_choice(4)
    plain = conv.export()
    assert isinstance(plain, nn.Conv2d) and plain.weight.shape == (4, 3, 3, 3)
    assert torch.equal(plain.weight, conv.weight[:4, :, 1:4, 1:4])
    x = torch.randn(2, 3, 6, 6)
    assert torch.allclose(conv(x), plain(x), atol=1e-6)
    lin = ops.Linear(c, 5)
    lin_plain = lin.export()
    assert lin_plain.weight.shape == (5, 4)
    z = torch.randn(2, 4)
    assert torch.allclose(lin(z), lin_plain(z))


def _assert_supernet_equals_subnet(net, sub, cfg) -> torch.Tensor:
    """The supernet in configuration ``cfg`` and its exported ``sub`` give the same outputs
    (eval mode); returns the input batch used."""
    net.eval()
    sub.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        FixedMutator(net, cfg)
        assert torch.allclose(net(x), sub(x), atol=1e-5)
    return x


@pytest.mark.parametrize("seed", range(4))
def test_build_subnet_matches_a_from_scratch_build_and_the_supernet(seed):
    net = mnasnet_supernet()
    space = search_space(net)
    cfg = space.canonical(space.sample(seed))
    # train-mode steps so BatchNorm statistics are not the initial ones
    RandomMutator(net, seed).apply(cfg)
    net.train()
    with torch.no_grad():
        net(torch.randn(8, 3, 16, 16))
    sub = build_subnet(net, cfg)
    assert count_params(sub) == count_params(standalone(cfg))
    assert not any(isinstance(m, (ops.Conv2d, ops.BatchNorm2d, ValueSpace, OperationSpace))
                   for m in sub.modules())
    _assert_supernet_equals_subnet(net, sub, cfg)


def test_mbconv_at_expansion_one_exports_without_expand_conv():
    net = mnasnet_supernet()
    space = search_space(net)
    cfg = {**space.default(), "blocks.0.op": "mbconv", "blocks.0.expansion": 1}
    sub = build_subnet(net, space.canonical(cfg))
    assert isinstance(sub.blocks[0].op.expand, nn.Identity)
    assert count_params(sub) == count_params(standalone(space.canonical(cfg)))


def test_darts_mutator_mixture_gets_gradients_and_exports_a_valid_config():
    torch.manual_seed(0)
    net = Toy()
    mut = DartsMutator(net)
    mut.reset()
    net(torch.randn(2, 3, 8, 8)).sum().backward()
    grads = {k: mut.logits(k).grad for k in mut.decisions}
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads.values()), grads
    with torch.no_grad():
        mut.logits("op")[:] = torch.tensor([0.0, 3.0])
        mut.logits("pick")[:] = torch.tensor([2.0, -1.0, 1.0])
    cfg = mut.export()
    assert cfg["op"] == "b" and cfg["pick"] == "c1+op"
    search_space(net).validate(cfg)


def test_random_mutator_samples_valid_single_paths():
    net = mnasnet_supernet()
    mut = RandomMutator(net, seed=3)
    seen = {mut.space.config_id(mut.reset()) for _ in range(20)}
    assert len(seen) == 20
    x = torch.randn(2, 3, 16, 16)
    assert net(x).shape == (2, 10)


def test_fair_mutator_trains_every_choice_of_every_decision_once_per_step():
    net = mnasnet_supernet(widths=[0.25, 0.5, 0.75, 1.0])
    mut = FairMutator(net, seed=0)
    for _ in range(3):
        paths = mut.paths()
        assert len(paths) == 4
        for p in paths:
            assert mut.apply(p) == p
        for key in ("blocks.0.width", "blocks.2.width"):
            assert sorted(p[key] for p in paths) == [0.25, 0.5, 0.75, 1.0]
        for key in ("blocks.1.op", "blocks.3.kernel"):
            values = [p[key] for p in paths]
            assert sorted(set(values)) == sorted(set(mut.decisions[key].choices))
            assert all(values.count(v) == 2 for v in set(values))


def test_sandwich_mutator_gives_largest_smallest_and_random_paths():
    net = mnasnet_supernet()
    mut = SandwichMutator(net, seed=0)
    largest, smallest, _ = mut.paths()
    for i in range(4):
        assert largest[f"blocks.{i}.width"] == 1.0 and smallest[f"blocks.{i}.width"] == 0.5
        assert largest[f"blocks.{i}.kernel"] == 5 and smallest[f"blocks.{i}.kernel"] == 3
        if largest[f"blocks.{i}.op"] == "mbconv":
            assert largest[f"blocks.{i}.expansion"] == 6
        if smallest[f"blocks.{i}.op"] == "mbconv":
            assert smallest[f"blocks.{i}.expansion"] == 1
    randoms = {mut.space.config_id(mut.paths()[2]) for _ in range(10)}
    assert len(randoms) == 10


def test_subnet_evaluator_recalibrates_and_restores_batchnorm():
    net = mnasnet_supernet()
    torch.manual_seed(0)
    batches = [(torch.randn(16, 3, 16, 16), torch.randint(0, 10, (16,))) for _ in range(2)]
    before = {k: v.clone() for k, v in net.state_dict().items()}
    ev = SubnetEvaluator(net, batches, batches, recalib_batches=2)
    cfg = search_space(net).default()
    out = ev(cfg)
    assert 0.0 <= out["val_acc"] <= 1.0
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # recalibrated statistics differ from the initial ones (the score uses them)
    ev_plain = SubnetEvaluator(net, batches, batches, recalib_batches=0)
    assert ev_plain(cfg)["val_loss"] != pytest.approx(out["val_loss"])


def _supernet_run(tmp_path, name, epochs, restore=None, **extra):
    ctx = LocalContext(tmp_path / name, seed=1, max_epochs=epochs, restore_dir=restore,
                       num_cpus=1, echo=False, tensorboard=False)
    from trainers.oneshot.train import train_supernet

    cfg = {"data_fraction": 0.15, "eval_subnets": 1, "bn_recalib_batches": 1, "batch_size": 32,
           "supernet_args": {"filters": [16, 16], "strides": [1, 2], "head_filters": 32},
           "device": "cpu", **extra}
    return ctx, train_supernet, cfg


@pytest.mark.parametrize("strategy,sampling,distill", [
    ("spos", "uniform", False), ("darts", "uniform", False), ("spos", "fair", False),
    ("spos", "sandwich", False), ("spos", "sandwich", True)])
def test_supernet_checkpoint_resume_is_exact(tmp_path, strategy, sampling, distill):
    from trainers.checkpoint import read_checkpoint

    ctx, train, cfg = _supernet_run(tmp_path, "full", 2, strategy=strategy, sampling=sampling,
                                    inplace_distill=distill)
    train(cfg, ctx)
    full = read_checkpoint(ctx.last_checkpoint)
    stop_after_one = LocalContext(tmp_path / "half", seed=1, max_epochs=2, num_cpus=1,
                                  echo=False, tensorboard=False)
    stop_after_one.request_stop()
    train(cfg, stop_after_one)
    assert [r["epoch"] for r in stop_after_one.results] == [1]
    resumed = LocalContext(tmp_path / "resumed", seed=1, max_epochs=2, num_cpus=1, echo=False,
                           tensorboard=False, restore_dir=stop_after_one.last_checkpoint)
    train(cfg, resumed)
    assert [r["epoch"] for r in resumed.results] == [2]
    again = read_checkpoint(resumed.last_checkpoint)
    for k, v in full["model"].items():
        assert torch.equal(v, again["model"][k]), k
    assert resumed.results[-1]["val_acc"] == ctx.results[-1]["val_acc"]
    if strategy == "darts":
        for k, v in full["extra"]["mutator"].items():
            assert torch.equal(v, again["extra"]["mutator"][k])


def test_subnet_trainer_inherits_supernet_weights(tmp_path):
    from trainers.oneshot.train import load_supernet, train_subnet

    ctx, train, cfg = _supernet_run(tmp_path, "super", 1)
    train(cfg, ctx)
    supernet = load_supernet(ctx.last_checkpoint)
    arch = search_space(supernet).default()
    sub_ctx = LocalContext(tmp_path / "sub", seed=0, max_epochs=1, num_cpus=1, echo=False,
                           tensorboard=False)
    train_subnet({**arch, **{k: v for k, v in cfg.items() if k != "eval_subnets"},
                  "init": "inherit", "supernet_checkpoint": str(ctx.last_checkpoint)}, sub_ctx)
    row = sub_ctx.results[-1]
    assert row["params"] == count_params(build_subnet(supernet, arch))
    assert 0.0 <= row["val_acc"] <= 1.0
    assert np.isfinite(row["train_loss"])


def test_subnet_trainer_from_scratch_depends_on_its_seed_only(tmp_path):
    from trainers.oneshot.train import train_subnet

    _, _, cfg = _supernet_run(tmp_path, "unused", 1)
    cfg = {k: v for k, v in cfg.items() if k != "eval_subnets"}
    arch = search_space(mnasnet_supernet(**cfg["supernet_args"])).default()
    losses = []
    for name, seed, noise in (("a", 0, 1), ("b", 0, 2), ("c", 1, 1)):
        torch.manual_seed(noise)  # global RNG state left by earlier work in the process
        sub = LocalContext(tmp_path / name, seed=seed, max_epochs=1, num_cpus=1, echo=False,
                           tensorboard=False)
        train_subnet({**arch, **cfg}, sub)
        losses.append(sub.results[-1]["train_loss"])
    assert losses[0] == losses[1]
    assert losses[0] != losses[2]


class Flat(nn.Module):
    """Decisions without conditions: an op chosen from a list, a free input choice, a width."""

    def __init__(self):
        super().__init__()
        self.width = ValueSpace([4, 8])
        self.conv = ops.Conv2d(3, self.width, 3)
        self.op = OperationSpace([nn.Identity(), nn.ReLU()])
        self.merge = InputSpace(choose_from=["x", "conv", "op"])

    def forward(self, x):
        a = self.conv(x)
        return self.merge([x.mean(1, keepdim=True).expand_as(a), a, self.op(a)])


def test_nni_classic_nas_json_maps_onto_the_models_decisions():
    from spaces.formats import nni
    from trainers.oneshot import nni_search_space

    net = Flat()
    doc = nni_search_space(net)
    assert doc["op"] == {"_type": "layer_choice", "_value": ["0", "1"]}
    assert doc["merge"] == {"_type": "input_choice",
                            "_value": {"candidates": ["x", "conv", "op"], "n_chosen": [1, 2, 3]}}
    try:
        read = nni.from_dict(doc)
    except SpaceError as exc:
        if "layer_choice" in str(exc) or "input_choice" in str(exc):
            pytest.skip("spaces.formats.nni does not read classic-NAS types yet")
        raise
    ours = search_space(net)
    assert read.size() == ours.size() == 2 * 2 * 7
    seen = set()
    for seed in range(40):
        cfg = FixedMutator(net, read.sample(np.random.default_rng(seed))).config
        assert ours.is_valid(cfg)
        seen.add(ours.config_id(cfg))
        out = net(torch.zeros(1, 3, 8, 8))
        assert out.shape[1] == cfg["width"]
    assert len(seen) > 10                       # NNI samples reach many of the 28 architectures


def test_inplace_distill_needs_spos_sandwich():
    from trainers.oneshot.settings import OneShotConfig

    assert OneShotConfig(sampling="sandwich", inplace_distill=True).inplace_distill
    for bad in ({"sampling": "uniform"}, {"strategy": "darts", "sampling": "sandwich"}):
        with pytest.raises(TrainerError, match="inplace_distill"):
            OneShotConfig(inplace_distill=True, **bad)
    with pytest.raises(TrainerError, match="inplace_distill must be a bool"):
        OneShotConfig(sampling="sandwich", inplace_distill="yes")


def test_path_loss_is_soft_cross_entropy_with_a_teacher():
    from types import SimpleNamespace

    import torch.nn.functional as F

    from trainers.oneshot.settings import OneShotConfig
    from trainers.oneshot.train import _path_loss

    loop = SimpleNamespace(cfg=OneShotConfig())
    logits, y = torch.randn(5, 10), torch.tensor([0, 3, 9, 2, 2])
    hard = _path_loss(loop, logits, y, None)
    assert torch.allclose(hard, F.cross_entropy(logits, y))
    assert torch.allclose(_path_loss(loop, logits, y, F.one_hot(y, 10).float()), hard)
    teacher = torch.randn(5, 10).softmax(1)
    expected = F.kl_div(F.log_softmax(logits, 1), teacher, reduction="batchmean") \
        - (teacher * teacher.log()).sum(1).mean()
    assert torch.allclose(_path_loss(loop, logits, y, teacher), expected, atol=1e-6)


def test_skip_op_is_identity_when_shapes_allow_and_a_projection_otherwise():
    kw = {"ops": ("conv", "mbconv", "skip")}
    net = mnasnet_supernet(**kw)
    space = search_space(net)
    cfg = space.canonical({**space.default(), "blocks.1.op": "skip", "blocks.1.width": 1.0,
                           "blocks.2.op": "skip", "blocks.2.width": 0.5})
    sub = build_subnet(net, cfg)
    alone = standalone(cfg, **kw)
    assert isinstance(sub.blocks[2].op, nn.Identity)
    assert isinstance(alone.backbone.stages[2][0], nn.Identity)
    assert isinstance(sub.blocks[1].op.proj[0], nn.Conv2d)
    assert sub.blocks[1].op.proj[0].stride == (2, 2)
    assert count_params(sub) == count_params(alone)
    x = _assert_supernet_equals_subnet(net, sub, cfg)
    with torch.no_grad():
        assert alone.eval()(x).shape == (4, 10)


@pytest.mark.parametrize("seed", range(3))
def test_subnets_with_skip_match_their_standalone_build(seed):
    kw = {"ops": ("conv", "mbconv", "skip"), "widths": (0.25, 0.5, 1.0)}
    net = mnasnet_supernet(**kw)
    space = search_space(net)
    for _ in range(4):
        cfg = space.canonical(space.sample(np.random.default_rng(seed)))
        seed += 10
        assert count_params(build_subnet(net, cfg)) == count_params(standalone(cfg, **kw))
