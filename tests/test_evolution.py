"""Evolution (regularized evolution, NSGA-II) and local search searchers, driven directly
through the Tune Searcher API on synthetic objectives (no training), plus state round trips."""
from __future__ import annotations

import numpy as np
import pytest

from orchestrator.errors import SpecError
from orchestrator.evolution import (EvolutionSearcher, LocalSearcher, crowding,
                                    nondominated_ranks, parse_constraint)
from spaces.core import Categorical, Int, Ordinal, SearchSpace
from spaces.tree import ArchTree, choice, repeat

SPACE = SearchSpace([Ordinal(f"x{i}", tuple(range(8))) for i in range(4)], name="grid4")
TARGET = {"x0": 6, "x1": 1, "x2": 4, "x3": 7}


def score(cfg):
    return -sum(abs(cfg[k] - v) for k, v in TARGET.items())


def drive(searcher, n, objective, concurrency=1):
    """Run ``n`` trials with ``concurrency`` in flight; returns the configs in order."""
    seen, running, tid = [], [], 0
    while len(seen) < n:
        while len(running) < concurrency and len(seen) + len(running) < n:
            cfg = searcher.suggest(f"t{tid}")
            if cfg is None:
                break
            running.append((f"t{tid}", cfg))
            tid += 1
        trial, cfg = running.pop(0)
        searcher.on_trial_complete(trial, objective(cfg))
        seen.append(cfg)
    return seen


def test_regularized_evolution_beats_random_on_a_smooth_objective():
    best_evo, best_rand = [], []
    for seed in range(5):
        evo = EvolutionSearcher(SPACE, objectives=[("acc", "max")], population_size=10,
                                sample_size=3, mutation_prob=0.3, seed=seed)
        cfgs = drive(evo, 80, lambda c: {"acc": score(c)}, concurrency=2)
        best_evo.append(max(score(c) for c in cfgs))
        rng = np.random.default_rng(seed)
        best_rand.append(max(score(SPACE.sample(rng)) for _ in range(80)))
        assert all(SPACE.is_valid(c) for c in cfgs)
        assert len({SPACE.config_id(c) for c in cfgs}) == len(cfgs)  # never suggested twice
    assert np.mean(best_evo) > np.mean(best_rand)


def test_population_is_age_limited():
    evo = EvolutionSearcher(SPACE, objectives=[("acc", "max")], population_size=4, sample_size=2)
    drive(evo, 12, lambda c: {"acc": score(c)})
    assert len(evo.population) == 4
    assert [m["age"] for m in evo.population] == [9, 10, 11, 12]


def test_evolution_state_round_trip_continues_identically(tmp_path):
    a = EvolutionSearcher(SPACE, objectives=[("acc", "max")], population_size=5, seed=3)
    drive(a, 9, lambda c: {"acc": score(c)})
    a.save(str(tmp_path / "state.pkl"))
    b = EvolutionSearcher(SPACE, objectives=[("acc", "max")], population_size=5, seed=99)
    b.restore(str(tmp_path / "state.pkl"))
    assert [a.suggest(f"n{i}") for i in range(3)] == [b.suggest(f"n{i}") for i in range(3)]


def test_nsga2_keeps_a_pareto_front_under_a_constraint():
    space = SearchSpace([Int("w", 1, 64), Categorical("d", (1, 2, 3, 4))])

    def objective(c):
        acc = 1 - 1 / (c["w"] * c["d"])
        return {"val_acc": acc, "latency_ms": c["w"] * c["d"] * 0.1,
                "params": c["w"] * c["d"] * 1000}

    evo = EvolutionSearcher(space, objectives=[("val_acc", "max"), ("latency_ms", "min")],
                            population_size=8, sample_size=2, constraints=["params <= 100000"],
                            seed=0)
    drive(evo, 60, objective)
    assert evo.multi_objective
    pop = list(evo.population)
    feasible = [m for m in pop if m["violation"] == 0]
    assert len(feasible) >= 6
    ranks = nondominated_ranks(np.array([m["scores"] for m in feasible]))
    assert (ranks == 0).sum() >= 4


def test_pareto_helpers():
    pts = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.2]])
    assert nondominated_ranks(pts).tolist() == [0, 0, 0, 1]
    d = crowding(pts[:3])
    assert np.isinf(d[0]) and np.isinf(d[1]) and np.isfinite(d[2])
    assert parse_constraint("params <= 2e5") == ("params", "<=", 200000.0)
    with pytest.raises(SpecError):
        parse_constraint("params is small")


def test_local_search_climbs_and_restarts():
    loc = LocalSearcher(SPACE, objectives=[("acc", "max")], max_steps=20, seed=0)
    cfgs = drive(loc, 150, lambda c: {"acc": score(c)}, concurrency=2)
    assert max(score(c) for c in cfgs) == 0  # reaches the optimum
    assert all(SPACE.is_valid(c) for c in cfgs)
    assert loc.restarts >= 1


def test_local_search_state_round_trip():
    a = LocalSearcher(SPACE, objectives=[("acc", "max")], seed=1)
    drive(a, 7, lambda c: {"acc": score(c)})
    b = LocalSearcher(SPACE, objectives=[("acc", "max")], seed=5)
    b.set_state(a.get_state())
    assert [a.suggest(f"n{i}") for i in range(3)] == [b.suggest(f"n{i}") for i in range(3)]


def test_searchers_work_on_conditional_tree_spaces():
    tree = ArchTree({"w": choice([8, 16]),
                     "layers": repeat({"k": choice([3, 5]), "e": choice([1, 4])}, counts=[1, 2, 3])})
    space = tree.to_space()
    for s in (EvolutionSearcher(space, objectives=[("acc", "max")], population_size=4,
                                sample_size=2, seed=0),
              LocalSearcher(space, objectives=[("acc", "max")], seed=0)):
        cfgs = drive(s, 20, lambda c: {"acc": c["w"] + c["layers.count"]})
        assert all(space.is_valid(c) for c in cfgs)


def test_bad_options_are_spec_errors():
    with pytest.raises(SpecError, match="population_size"):
        EvolutionSearcher(SPACE, objectives=[("a", "max")], population_size=1)
    with pytest.raises(SpecError, match="sample_size"):
        EvolutionSearcher(SPACE, objectives=[("a", "max")], population_size=4, sample_size=5)
