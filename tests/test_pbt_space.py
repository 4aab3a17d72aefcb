"""PBT and PB2 explore only inside the space: every configuration a trainer would receive
validates (conditional children repaired, categoricals resampled, domains respected)."""
from __future__ import annotations

import numpy as np
import pytest
from trainers_for_tests import TOY_SPACE

from orchestrator.mutations import pbt_mutations
from orchestrator.pbt import explore_config, into_space
from spaces.compile.tune import INACTIVE, strip_inactive
from spaces.formats import load_space

# a conditional parent that is mutable (opt gates momentum and beta), a stepped Int, a
# log-scale Float near its bounds, an unordered categorical and an ordinal
SPACE = {
    "name": "pbt_prop",
    "parameters": {
        "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "wd": {"type": "float", "low": 0.0, "high": 0.1},
        "batch": {"type": "int", "low": 16, "high": 256, "step": 16},
        "opt": {"type": "categorical", "choices": ["sgd", "adam", "rmsprop"]},
        "momentum": {"type": "ordinal", "sequence": [0.5, 0.9, 0.99]},
        "beta": {"type": "float", "low": 0.8, "high": 0.999},
        "depth": {"type": "ordinal", "sequence": [1, 2, 3, 4]},
    },
    "conditions": [{"child": "momentum", "parent": "opt", "equals": "sgd"},
                   {"child": "beta", "parent": "opt", "equals": "adam"}],
}


def _tune_form(space, cfg):
    return {n: cfg.get(n, INACTIVE) for n in space.params}


@pytest.mark.parametrize("spec", [SPACE, TOY_SPACE], ids=["conditional", "toy"])
def test_1000_pbt_explores_stay_in_the_space(spec):
    space = load_space(spec)
    names = list(pbt_mutations(space))
    assert "opt" in names  # the parent of conditional children is mutated
    rng = np.random.default_rng(0)
    cfg = _tune_form(space, space.sample(rng))
    changed_children = 0
    for _ in range(1000):
        new, _ops = explore_config(space, cfg, names, rng, resample_probability=0.25)
        active = strip_inactive(new)
        space.validate(active)  # raises SpaceError on any value off the space
        assert set(new) == set(cfg)  # same Tune keys, inactive ones as the sentinel
        before = set(strip_inactive(cfg))
        changed_children += before != set(active)
        cfg = new
    assert changed_children > 50  # children really were switched on and off


def test_unordered_categoricals_are_resampled_not_shifted():
    space = load_space(SPACE)
    rng = np.random.default_rng(1)
    start = _tune_form(space, {"lr": 1e-3, "wd": 0.01, "batch": 32, "opt": "sgd",
                               "momentum": 0.9, "depth": 2})
    seen = {strip_inactive(explore_config(space, start, ["opt"], rng,
                                          resample_probability=0.0)[0])["opt"]
            for _ in range(200)}
    assert seen == {"sgd", "adam", "rmsprop"}  # 'rmsprop' is two index steps from 'sgd'


def test_numbers_are_perturbed_and_clamped_onto_their_domain():
    space = load_space(SPACE)
    rng = np.random.default_rng(2)
    top = _tune_form(space, {"lr": 0.09, "wd": 0.1, "batch": 256, "opt": "adam",
                             "beta": 0.99, "depth": 4})
    for _ in range(200):
        new = strip_inactive(explore_config(space, top, ["lr", "wd", "batch", "depth"], rng,
                                            resample_probability=0.0)[0])
        assert new["lr"] in (pytest.approx(0.09 * 0.8), 0.1)
        assert new["batch"] in (256, 208) and new["depth"] in (3, 4)
        assert new["wd"] in (0.1, pytest.approx(0.08))


def test_1000_pb2_proposals_are_moved_into_the_space():
    space = load_space(SPACE)
    bounds = pbt_mutations(space, pb2=True)
    rng = np.random.default_rng(3)
    checked = 0
    for _ in range(1000):
        base = _tune_form(space, space.sample(rng))
        proposal = {**base, **{n: float(rng.uniform(lo, hi)) for n, (lo, hi) in bounds.items()}}
        config = strip_inactive(into_space(space, proposal, rng))
        space.validate(config)  # raises SpaceError for a configuration outside the space
        checked += 1
    assert checked == 1000


def test_pb2_explores_log_scale_parameters_in_log_space():
    from orchestrator.pbt import SpacePB2

    space = load_space(SPACE)
    bounds = pbt_mutations(space, pb2=True)
    pb2 = SpacePB2(space=space, seed=0, time_attr="training_iteration", metric="val_acc",
                   mode="max", perturbation_interval=1, hyperparam_bounds=bounds)
    lo, hi = pb2._hyperparam_bounds["lr"]
    assert (lo, hi) == (pytest.approx(np.log(1e-5)), pytest.approx(np.log(1e-1)))
    assert pb2._hyperparam_bounds["wd"] == [0.0, 0.1]  # linear parameters stay linear
    # PB2's data holds log(lr): a trial's config goes in as its logarithm and comes back
    cfg = _tune_form(space, {"lr": 1e-3, "wd": 0.01, "batch": 32, "opt": "sgd",
                             "momentum": 0.9, "depth": 2})
    assert pb2.to_search(cfg)["lr"] == pytest.approx(np.log(1e-3))
    assert pb2.from_search(pb2.to_search(cfg))["lr"] == pytest.approx(1e-3)
    # 1000 proposals spread uniformly over PB2's bounds land log-uniformly in the space:
    # about half below the geometric middle 1e-3 (linear bounds would put ~1 % there)
    rng = np.random.default_rng(4)
    lrs = []
    for _ in range(1000):
        proposal = {**cfg, **{n: float(rng.uniform(*b)) for n, b in
                              pb2._hyperparam_bounds.items()}}
        new = strip_inactive(into_space(space, pb2.from_search(proposal), rng))
        space.validate(new)
        lrs.append(new["lr"])
    assert 0.4 < np.mean(np.array(lrs) < 1e-3) < 0.6
