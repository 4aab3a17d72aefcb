"""Sampling speed of archtune's SearchSpace vs ConfigSpace.

Spaces (all synthetic, generated from a fixed seed; no download):

- ``quicktune``: the Quick-Tune fine-tuning space (32 parameters, 8 conditions);
- ``autosklearn``: shaped like auto-sklearn's classification pipeline space: one ``__choice__``
  categorical per pipeline stage (classifier, feature preprocessor, rescaling, ...), each choice
  owning a handful of hyperparameters active only when it is chosen (floats and ints, some
  log-scaled, categoricals, constants), kernel-style chains (``degree`` under
  ``kernel == 'poly'`` under ``classifier == 'svc'``), forbidden pairs inside a component
  (``penalty == 'l1' && loss == 'hinge'``) and forbidden classifier/preprocessor combinations;
- ``autosklearn_large``: the same shape with twice as many components;
- ``or_chains``: the same shape plus hyperparameters shared between components through OR
  conditions over conditional parents, nested AND/OR, and deeper condition chains.

Each space is built once with archtune and handed to ConfigSpace through archtune's
ConfigSpace writer (``tests/test_configspace_oracle.py`` checks on these same spaces that both
libraries agree on every sampled configuration). Times:

- ``sample n=1000``: archtune ``space.sample(rng, 1000)`` vs ConfigSpace
  ``cs.sample_configuration(1000)``;
- ``sample+validate x1``: archtune ``space.validate(space.sample(rng))`` vs
  ``cs.sample_configuration()`` (which checks the configuration it builds);
- ``validate x1``: ``space.validate(cfg)`` vs ``Configuration.check_valid_configuration()``.

Best of several rounds, archtune and ConfigSpace measured in alternating rounds, microseconds
per call; prints a markdown table. ``cs.sample_configuration`` returns ``Configuration``
objects that build their dicts lazily; archtune returns the dicts.

Run: python bench/space_speed.py [--quick]
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spaces.core import (  # noqa: E402
    And, Categorical, Constant, Equals, Float, ForbiddenAnd, ForbiddenEquals, ForbiddenIn,
    GreaterThan, In, Int, NotEquals, Or, SearchSpace,
)
from spaces.library import quicktune  # noqa: E402

__all__ = ["pipeline_space", "autosklearn", "autosklearn_large", "or_chains", "SPACES",
           "to_configspace"]

_KERNELS = ("rbf", "poly", "sigmoid", "linear")


class _Builder:
    """Collects parameters, conditions and forbidden clauses of one synthetic pipeline space."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.params: list = []
        self.conditions: list = []
        self.forbiddens: list = []

    def add(self, p, cond=None):
        self.params.append(p)
        if cond is not None:
            self.conditions.append(cond)
        return p

    def numeric(self, name: str, cond):
        r = self.rng
        kind = r.choice(("float", "float_log", "int", "int_log"))
        if kind == "float":
            return self.add(Float(name, 0.0, r.choice((0.5, 1.0, 10.0))), cond)
        if kind == "float_log":
            return self.add(Float(name, 1e-5, r.choice((1e-1, 1.0, 10.0)), log=True), cond)
        if kind == "int":
            return self.add(Int(name, 1, r.choice((5, 20, 100))), cond)
        return self.add(Int(name, 2, r.choice((64, 512, 4096)), log=True), cond)

    def component(self, prefix: str, choice: str, option: str) -> list[str]:
        """Hyperparameters of one choice option; returns its categorical names."""
        r = self.rng
        cats: list[str] = []
        for j in range(r.randint(0, 6)):
            self.numeric(f"{prefix}:h{j}", Equals(f"{prefix}:h{j}", choice, option))
        for j in range(r.randint(0, 3)):
            name = f"{prefix}:c{j}"
            values = tuple(f"v{k}" for k in range(r.randint(2, 4)))
            self.add(Categorical(name, values), Equals(name, choice, option))
            cats.append(name)
        if r.random() < 0.3:
            self.add(Constant(f"{prefix}:const", r.choice(("auto", 1, True))),
                     Equals(f"{prefix}:const", choice, option))
        if r.random() < 0.35:
            self.kernel(prefix, choice, option)
        if len(cats) >= 2 and r.random() < 0.7:
            a, b = cats[0], cats[1]
            self.forbiddens.append(ForbiddenAnd(ForbiddenEquals(a, "v1"), ForbiddenEquals(b, "v1")))
        return cats

    def kernel(self, prefix: str, choice: str, option: str) -> None:
        k = f"{prefix}:kernel"
        self.add(Categorical(k, _KERNELS), Equals(k, choice, option))
        self.add(Int(f"{prefix}:degree", 2, 5), Equals(f"{prefix}:degree", k, "poly"))
        self.add(Float(f"{prefix}:coef0", -1.0, 1.0), In(f"{prefix}:coef0", k, ("poly", "sigmoid")))
        self.add(Float(f"{prefix}:gamma", 3e-5, 8.0, log=True),
                 In(f"{prefix}:gamma", k, ("rbf", "poly", "sigmoid")))

    def stage(self, stage: str, n_options: int) -> tuple[str, list[str]]:
        choice = f"{stage}:__choice__"
        options = [f"{stage}_{i}" for i in range(n_options)]
        self.add(Categorical(choice, tuple(options)))
        for opt in options:
            self.component(f"{stage}:{opt}", choice, opt)
        return choice, options

    def cross_forbiddens(self, a: str, a_opts: list[str], b: str, b_opts: list[str],
                         n: int) -> None:
        """``n`` forbidden (a == x && b in {...}) pairs; never the default pair."""
        r = self.rng
        seen = set()
        while n > 0:
            x = r.choice(a_opts[1:])
            ys = tuple(sorted(r.sample(b_opts[1:], r.randint(1, min(3, len(b_opts) - 1)))))
            if (x, ys) in seen:
                continue
            seen.add((x, ys))
            clause = ForbiddenEquals(b, ys[0]) if len(ys) == 1 else ForbiddenIn(b, ys)
            self.forbiddens.append(ForbiddenAnd(ForbiddenEquals(a, x), clause))
            n -= 1


def _shared_or(b: _Builder, clf: str, clf_opts: list[str], pre: str, pre_opts: list[str],
               n: int) -> None:
    """Hyperparameters shared between components: ORs over conditional parents, nested AND/OR
    and chains hanging off them."""
    r = b.rng
    kernels = [p.name for p in b.params if p.name.endswith(":kernel")]
    for i in range(n):
        name = f"shared:s{i}"
        parts = [Equals(name, clf, r.choice(clf_opts[1:])), NotEquals(name, pre, pre_opts[0])]
        if kernels:
            parts.append(Equals(name, r.choice(kernels), "rbf"))
        if r.random() < 0.5:
            parts[1] = And(parts[1], GreaterThan(name, "rescaling:quantile", 0.5))
        p = b.numeric(name, Or(*parts))
        child = f"{name}:child"
        mid = p.low + (p.high - p.low) // 2 if isinstance(p, Int) else (p.low + p.high) / 2
        on_parent = GreaterThan(child, name, mid) if i % 2 else Equals(child, pre, pre_opts[1])
        b.add(Categorical(child, ("a", "b", "c")), Or(on_parent, Equals(child, clf, clf_opts[0])))
        b.add(Int(f"{child}:depth", 1, 8), Equals(f"{child}:depth", child, "b"))
        b.forbiddens.append(ForbiddenAnd(ForbiddenEquals(child, "c"),
                                         ForbiddenEquals(clf, r.choice(clf_opts[1:]))))


def pipeline_space(n_classifiers: int, n_preprocessors: int, n_cross: int, n_shared: int = 0,
                   seed: int = 0, name: str = "pipeline") -> SearchSpace:
    """An auto-sklearn-shaped space (see the module docstring)."""
    b = _Builder(seed)
    clf, clf_opts = b.stage("classifier", n_classifiers)
    pre, pre_opts = b.stage("feature_preprocessor", n_preprocessors)
    b.stage("rescaling", 6)
    b.add(Float("rescaling:quantile", 0.0, 1.0), Equals("rescaling:quantile",
                                                          "rescaling:__choice__", "rescaling_1"))
    b.add(Categorical("imputation:strategy", ("mean", "median", "most_frequent")))
    b.add(Categorical("balancing:strategy", ("none", "weighting")))
    enc, enc_opts = b.stage("categorical_encoding", 4)
    b.add(Float("minority:fraction", 0.0001, 0.5, log=True))
    b.cross_forbiddens(clf, clf_opts, pre, pre_opts, n_cross)
    b.cross_forbiddens(pre, pre_opts, enc, enc_opts, max(1, n_cross // 10))
    if n_shared:
        _shared_or(b, clf, clf_opts, pre, pre_opts, n_shared)
    return SearchSpace(b.params, b.conditions, b.forbiddens, name=name)


def autosklearn() -> SearchSpace:
    return pipeline_space(16, 14, 45, seed=1, name="autosklearn")


def autosklearn_large() -> SearchSpace:
    return pipeline_space(32, 28, 100, seed=2, name="autosklearn_large")


def or_chains() -> SearchSpace:
    return pipeline_space(16, 14, 45, n_shared=20, seed=3, name="or_chains")


SPACES = {"quicktune": quicktune, "autosklearn": autosklearn,
          "autosklearn_large": autosklearn_large, "or_chains": or_chains}


def to_configspace(space: SearchSpace, seed: int = 0):
    """The same space as a ConfigSpace ``ConfigurationSpace`` (through archtune's writer)."""
    from ConfigSpace import ConfigurationSpace

    from spaces.formats import configspace

    cs = ConfigurationSpace.from_serialized_dict(configspace.to_dict(space))
    cs.seed(seed)
    return cs


def _once(fn, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t) / repeat


def pair(fa, repeat_a: int, fc, repeat_c: int, rounds: int) -> tuple[float, float]:
    """Best time per call (microseconds) of ``fa`` (archtune) and ``fc`` (ConfigSpace), measured
    in alternating rounds so that both see the same load on a shared machine."""
    best_a = best_c = float("inf")
    for _ in range(rounds):
        best_a = min(best_a, _once(fa, repeat_a))
        best_c = min(best_c, _once(fc, repeat_c))
    return best_a * 1e6, best_c * 1e6


def rows_for(name: str, quick: bool) -> list[tuple]:
    space = SPACES[name]()
    cs = to_configspace(space)
    rng = np.random.default_rng(0)
    space.sample(rng, 10)  # the one-off pilot round that sizes batch rounds
    rounds = 3 if quick else 7
    k = 1 if quick else 3
    batch = pair(lambda: space.sample(rng, 1000), k, lambda: cs.sample_configuration(1000), k,
                 rounds)
    single = pair(lambda: space.validate(space.sample(rng)), 100 * k, cs.sample_configuration,
                  20 * k, rounds)
    cfg, conf = space.sample(rng), cs.sample_configuration()
    valid = pair(lambda: space.validate(cfg), 300 * k, conf.check_valid_configuration, 300 * k,
                 rounds)
    shape = (f"{len(space.params)} params, {len(space.conditions)} conditions, "
             f"{len(space.forbiddens)} forbiddens")
    return [(name, shape, op, a, c) for op, (a, c) in
            (("sample n=1000", batch), ("sample+validate x1", single), ("validate x1", valid))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--spaces", nargs="*", default=list(SPACES), choices=list(SPACES))
    args = ap.parse_args()
    print("| space | shape | op | archtune us | ConfigSpace us | ratio (ConfigSpace / archtune) |")
    print("|---|---|---|---:|---:|---:|")
    for name in args.spaces:
        for space, shape, op, a, c in rows_for(name, args.quick):
            print(f"| {space} | {shape} | {op} | {a:.1f} | {c:.1f} | {c / a:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
