"""``quick``'s novelty rule: model candidates keep ``min_distance`` from proposed configs."""
from __future__ import annotations

import numpy as np
import pytest
from test_replay import FIXED

from orchestrator.quick.policy import QuickPolicy
from orchestrator.spec import Experiment


@pytest.fixture()
def space():
    exp = Experiment(name="novelty", space="quicktune_cpu", fixed=FIXED, trainer="replay",
                     data={"replay_table": "unused.json.gz"}, max_epochs=6, seed=0)
    return exp.load_space()


def _policy(space, **kw) -> QuickPolicy:
    return QuickPolicy(space, max_epochs=6, seed=0, **kw)


def _proposed(policy: QuickPolicy, n: int) -> list[dict]:
    return [policy.suggest(f"t{i}") for i in range(n)]


def test_near_duplicates_are_dropped_far_candidates_kept(space):
    policy = _policy(space, min_distance=0.5)
    done = _proposed(policy, 4)
    rng = np.random.default_rng(1)
    near = [space.canonical(space.mutate(done[0], prob=0.05, rng=rng)) for _ in range(8)]
    far = [space.canonical(c) for c in space.sample(rng, n=40)]
    near_d, far_d = policy.distance(near), policy.distance(far)
    assert near_d.max() < 0.5 <= np.median(far_d)
    kept = {space.config_id(c) for c in policy._novel(near + far)}
    assert not kept & {space.config_id(c) for c in near}
    assert kept == {space.config_id(c) for c, d in zip(far, far_d) if d >= 0.5}


def test_the_most_distant_quarter_competes_when_none_is_far_enough(space):
    policy = _policy(space, min_distance=50.0)
    _proposed(policy, 4)
    cands = [space.canonical(c) for c in space.sample(np.random.default_rng(2), n=40)]
    dist = policy.distance(cands)
    kept = policy._novel(cands)
    assert 0 < len(kept) < len(cands)
    assert min(policy.distance(kept)) >= np.quantile(dist, 0.75)


def test_zero_disables_the_rule(space):
    policy = _policy(space, min_distance=0.0)
    done = _proposed(policy, 2)
    same = [dict(done[0]), dict(done[1])]
    assert policy.distance(same).max() == 0.0
    assert policy._novel(same) == same


def test_distance_unit_is_the_spread_of_random_configs(space):
    policy = _policy(space)
    _proposed(policy, 1)
    cands = [space.canonical(c) for c in space.sample(np.random.default_rng(3), n=200)]
    assert 0.3 < float(np.median(policy.distance(cands))) < 1.5


def _model_distances(space, min_distance: float) -> list[float]:
    """Distance of each model proposal to the configurations proposed before it, in a search
    where the first configuration stays far ahead (so exploitation pulls towards it)."""
    policy = _policy(space, min_distance=min_distance, portfolio=[])
    out = []
    for i in range(16):
        before = policy.counts["model"]
        cfg = policy.suggest(f"t{i}")
        if policy.counts["model"] > before:
            rest = dict(policy.trials)
            del policy.trials[f"t{i}"]
            out.append(float(policy.distance([cfg])[0]))
            policy.trials = rest
        for e in range(1, 4):
            policy.observe(f"t{i}", e, (0.9 if i == 0 else 0.1) + 0.01 * e)
        policy.complete(f"t{i}")
    return out


def test_model_proposals_keep_their_distance(space):
    on, off = _model_distances(space, 0.7), _model_distances(space, 0.0)
    assert len(on) >= 8 and len(off) >= 8
    assert np.median(on) >= 0.7 > np.median(off)


@pytest.mark.parametrize("bad", [-0.1, float("nan")])
def test_negative_min_distance_is_rejected(space, bad):
    with pytest.raises(ValueError, match="min_distance"):
        _policy(space, min_distance=bad)
