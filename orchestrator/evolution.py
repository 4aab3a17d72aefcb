"""Evolutionary and local search as Ray Tune searchers, over any archtune space.

``evolution`` (:class:`EvolutionSearcher`): regularized evolution (Real et al., 2019). The
first ``population_size`` suggestions are random; afterwards, whenever a trial finishes, the next
suggestion is a child: ``sample_size`` members drawn from the population, the best of them
(tournament) mutated with :meth:`SearchSpace.mutate` (and, with probability ``crossover_prob``,
first crossed with a second tournament winner). The population keeps the ``population_size``
most recent results; the oldest is removed (age-based removal). Asynchronous: a child is made
from whatever has finished, so workers never wait for a generation.

With several ``objectives`` (e.g. ``[[val_acc, max], [latency_ms, min]]``) it runs in NSGA-II
mode: members are ranked by non-dominated sorting and crowding distance; tournaments and removal
use that rank (the worst, not the oldest, is removed). ``constraints`` such as
``params <= 2e5`` make violating members lose to every feasible one (Deb's constraint
domination), ordered by how far they violate.

``local`` (:class:`LocalSearcher`): starts from a random configuration, evaluates its
``neighbours`` (one parameter changed), moves to the best neighbour when it improves on the
best so far and restarts from a fresh random configuration when no neighbour does (or after
``max_steps`` moves).

Children and neighbours come from :mod:`spaces.variation`, so every configuration is valid;
configurations already suggested (same ``config_id``) are not suggested again. State is kept by
``get_state``/``set_state`` (``save``/``restore`` pickle it), so ``archtune resume`` continues a
search. Options come from the experiment's ``searcher:`` section.
"""
from __future__ import annotations

import collections
import math
from typing import Any, Sequence

import numpy as np

from orchestrator.constraints import parse_constraint, violation
from orchestrator.errors import SpecError
from orchestrator.pareto import crowding, nondominated_ranks
from orchestrator.search import _seed, _StatefulSearcher

__all__ = ["EvolutionSearcher", "LocalSearcher", "crowding", "make_evolution", "make_local",
           "nondominated_ranks", "parse_constraint"]


class _Member(dict):
    """A finished trial in the population: ``config``, ``scores`` (higher is better),
    ``violation`` (0 when feasible) and ``age`` (completion order)."""


class _VariationSearcher(_StatefulSearcher):
    """Shared bookkeeping: seeded rng, suggested ids, pending trials, scores of results."""

    def __init__(self, space: Any, *, objectives: Sequence[tuple[str, str]],
                 constraints: Sequence[str] = (), seed: int | None = 0,
                 max_tries: int = 50) -> None:
        metric, mode = objectives[0]
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.objectives = [(str(m), str(d)) for m, d in objectives]
        self.constraints = [parse_constraint(c) for c in constraints]
        self._rng = np.random.default_rng(seed)
        self._max_tries = int(max_tries)
        self._seen: set[str] = set()
        self._pending: dict[str, dict] = {}
        self.n_suggested = 0

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        super().set_search_properties(metric, mode, config, **spec)
        if len(self.objectives) == 1:
            self.objectives = [(self._metric, self._mode)]
        return True

    def _scores(self, result: dict) -> list[float] | None:
        out = []
        for name, mode in self.objectives:
            v = result.get(name)
            if v is None or not isinstance(v, (int, float)) or math.isnan(float(v)):
                return None
            out.append(float(v) if mode == "max" else -float(v))
        return out

    def _fresh(self, cfg: dict) -> bool:
        return self.space.config_id(cfg) not in self._seen

    def _random(self) -> dict:
        cfg = self.space.canonical(self.space.sample(self._rng))
        for _ in range(self._max_tries):
            if self._fresh(cfg):
                break
            cfg = self.space.canonical(self.space.sample(self._rng))
        return cfg

    def _propose(self, trial_id: str, cfg: dict) -> dict:
        cfg = self.space.canonical(cfg)
        self._seen.add(self.space.config_id(cfg))
        self._pending[trial_id] = cfg
        self.n_suggested += 1
        return dict(cfg)

    def _base_state(self) -> dict:
        return {"rng": self._rng.bit_generator.state, "seen": set(self._seen),
                "pending": dict(self._pending), "n_suggested": self.n_suggested,
                "metric": self._metric, "mode": self._mode, "objectives": list(self.objectives)}

    def _set_base_state(self, state: dict) -> None:
        self._rng.bit_generator.state = state["rng"]
        self._seen = set(state["seen"])
        self._pending = dict(state["pending"])
        self.n_suggested = state["n_suggested"]
        self._metric, self._mode = state["metric"], state["mode"]
        self.objectives = list(state["objectives"])


class EvolutionSearcher(_VariationSearcher):
    """Regularized evolution / NSGA-II (see the module docstring).

    Args:
        space: an archtune :class:`~spaces.core.SearchSpace`.
        objectives: ``[(metric, "max"|"min"), ...]``; one = regularized evolution, more =
            NSGA-II mode.
        population_size: members kept (and random configurations before evolving), >= 2.
        sample_size: tournament size, 1..population_size.
        mutation_prob: probability that :meth:`SearchSpace.mutate` changes each parameter.
        crossover_prob: probability of crossing two tournament winners before mutating.
        constraints: ``"metric <= value"`` strings (NSGA-II ranking and tournaments honour them
            in both modes).
        seed: seed of every random choice.
    """

    def __init__(self, space: Any, *, objectives: Sequence[tuple[str, str]],
                 population_size: int = 20, sample_size: int = 5, mutation_prob: float = 0.2,
                 crossover_prob: float = 0.0, constraints: Sequence[str] = (),
                 seed: int | None = 0) -> None:
        if population_size < 2:
            raise SpecError(f"searcher.population_size must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise SpecError(f"searcher.sample_size must be in 1..population_size "
                            f"({population_size}), got {sample_size}")
        for key, p in (("mutation_prob", mutation_prob), ("crossover_prob", crossover_prob)):
            if not 0.0 <= p <= 1.0:
                raise SpecError(f"searcher.{key} must be in [0, 1], got {p}")
        super().__init__(space, objectives=objectives, constraints=constraints, seed=seed)
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self.mutation_prob = float(mutation_prob)
        self.crossover_prob = float(crossover_prob)
        self.population: collections.deque = collections.deque()
        self.history: list[_Member] = []
        self._age = 0

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1 or bool(self.constraints)

    # -- ranking ---------------------------------------------------------------------------
    def _keys(self, members: Sequence[_Member]) -> list[tuple]:
        """Sort keys, smaller is better: (violation, pareto rank, -crowding) or (-score,)."""
        if not self.multi_objective:
            return [(-m["scores"][0],) for m in members]
        feas = [i for i, m in enumerate(members) if m["violation"] == 0]
        keys: list[tuple] = [(m["violation"], 0, 0.0) for m in members]
        if feas:
            pts = np.array([members[i]["scores"] for i in feas])
            ranks = nondominated_ranks(pts)
            dist = np.zeros(len(feas))
            for r in set(ranks.tolist()):
                idx = np.where(ranks == r)[0]
                dist[idx] = crowding(pts[idx])
            for j, i in enumerate(feas):
                keys[i] = (0.0, int(ranks[j]), -float(dist[j]))
        return keys

    def _tournament(self) -> dict:
        pop = list(self.population)
        k = min(self.sample_size, len(pop))
        idx = self._rng.choice(len(pop), size=k, replace=False)
        keys = self._keys(pop)
        best = min(idx, key=lambda i: keys[i])
        return pop[int(best)]["config"]

    # -- Searcher API ----------------------------------------------------------------------
    def suggest(self, trial_id: str) -> dict | None:
        if len(self.population) < min(self.population_size, 2) or \
                self.n_suggested < self.population_size:
            return self._propose(trial_id, self._random())
        for _ in range(self._max_tries):
            parent = self._tournament()
            if self.crossover_prob and self._rng.random() < self.crossover_prob:
                parent = self.space.crossover(parent, self._tournament(), rng=self._rng)
            child = self.space.mutate(parent, prob=self.mutation_prob, rng=self._rng)
            if self._fresh(child):
                return self._propose(trial_id, child)
        return self._propose(trial_id, self._random())

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        cfg = self._pending.pop(trial_id, None)
        if cfg is None or error or not result:
            return
        scores = self._scores(result)
        if scores is None:
            return
        self._age += 1
        member = _Member(config=cfg, scores=scores, age=self._age,
                         violation=violation(result, self.constraints), trial_id=trial_id)
        self.population.append(member)
        self.history.append(member)
        while len(self.population) > self.population_size:
            if self.multi_objective:
                keys = self._keys(list(self.population))
                worst = max(range(len(keys)), key=lambda i: (keys[i], -self.population[i]["age"]))
                del self.population[worst]
            else:
                self.population.popleft()

    def get_state(self) -> dict:
        return {**self._base_state(), "population": list(self.population),
                "history": list(self.history), "age": self._age}

    def set_state(self, state: dict) -> None:
        self._set_base_state(state)
        self.population = collections.deque(state["population"])
        self.history = list(state["history"])
        self._age = state["age"]


class LocalSearcher(_VariationSearcher):
    """Local search over :meth:`SearchSpace.neighbours` with restarts (module docstring).

    Args:
        space: an archtune space; objectives: one ``(metric, mode)``.
        max_steps: moves from one start before a restart.
        seed: seed of starts and neighbour order.
    """

    def __init__(self, space: Any, *, objectives: Sequence[tuple[str, str]], max_steps: int = 50,
                 seed: int | None = 0) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self.max_steps = int(max_steps)
        self.center: dict | None = None       # the configuration whose neighbours are queued
        self.center_score: float | None = None
        self.queue: list[dict] = []
        self.waiting: set[str] = set()         # trials of the current neighbourhood
        self.best_round: tuple[float, dict] | None = None
        self.steps = 0
        self.restarts = 0

    def _restart(self) -> None:
        self.center, self.center_score = None, None
        self.queue, self.best_round, self.steps = [], None, 0
        self.restarts += 1

    def _expand(self) -> None:
        nbrs = [n for n in self.space.neighbours(self.center, rng=self._rng) if self._fresh(n)]
        order = self._rng.permutation(len(nbrs))
        self.queue = [nbrs[i] for i in order]

    def suggest(self, trial_id: str) -> dict | None:
        if self.center is None:
            cfg = self._random()
            self.center = cfg
            self.waiting = {trial_id}
            return self._propose(trial_id, cfg)
        if not self.queue and not self.waiting:
            self._move()
        if not self.queue:
            if self.waiting:
                return None                   # wait for the neighbourhood to finish
            self._restart()
            return self.suggest(trial_id)
        self.waiting.add(trial_id)
        return self._propose(trial_id, self.queue.pop())

    def _move(self) -> None:
        """Move to the best evaluated neighbour if it beats the centre, else restart."""
        if self.center_score is None:
            if self.best_round is None:
                self._restart()
                return
            self.center_score, self.center = self.best_round
        elif self.best_round is not None and self.best_round[0] > self.center_score \
                and self.steps < self.max_steps:
            self.center_score, self.center = self.best_round
            self.steps += 1
        else:
            self._restart()
            return
        self.best_round = None
        self._expand()
        if not self.queue:
            self._restart()

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        cfg = self._pending.pop(trial_id, None)
        self.waiting.discard(trial_id)
        if cfg is None or error or not result:
            return
        scores = self._scores(result)
        if scores is None:
            return
        if self.center is not None and self.space.config_id(cfg) == \
                self.space.config_id(self.center) and self.center_score is None:
            self.center_score = scores[0]
            self._expand()
            return
        if self.best_round is None or scores[0] > self.best_round[0]:
            self.best_round = (scores[0], cfg)

    def get_state(self) -> dict:
        return {**self._base_state(), "center": self.center, "center_score": self.center_score,
                "queue": list(self.queue), "waiting": set(self.waiting),
                "best_round": self.best_round, "steps": self.steps, "restarts": self.restarts}

    def set_state(self, state: dict) -> None:
        self._set_base_state(state)
        for key in ("center", "center_score", "queue", "waiting", "best_round", "steps",
                    "restarts"):
            setattr(self, key, state[key])


def _objectives(exp: Any) -> list[tuple[str, str]]:
    objs = list(getattr(exp.searcher, "objectives", None) or [])
    if not objs:
        return [(exp.metric, exp.mode)]
    return [(str(o[0]), str(o[1])) for o in objs]


def make_evolution(exp: Any, space: Any) -> EvolutionSearcher:
    """``evolution``: regularized evolution, NSGA-II with several objectives or constraints."""
    s = exp.searcher
    return EvolutionSearcher(space, objectives=_objectives(exp),
                             population_size=s.population_size, sample_size=s.sample_size,
                             mutation_prob=s.mutation_prob, crossover_prob=s.crossover_prob,
                             constraints=tuple(s.constraints), seed=_seed(exp))


def make_local(exp: Any, space: Any) -> LocalSearcher:
    """``local``: local search over neighbours from the best so far, with restarts."""
    return LocalSearcher(space, objectives=[(exp.metric, exp.mode)],
                         max_steps=exp.searcher.max_steps, seed=_seed(exp))
