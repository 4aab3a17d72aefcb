"""Sampling speed of archtune's SearchSpace vs ConfigSpace on the Quick-Tune space.

Builds the same 32-parameter space directly with the ConfigSpace API and times
  - single-config sampling + validation (archtune: sample() + validate(); ConfigSpace:
    sample_configuration(), which validates the configuration it builds),
  - batch sampling of n=1000 configs (archtune: sample(rng, 1000); ConfigSpace:
    sample_configuration(1000)),
and prints a markdown table (op, archtune us, ConfigSpace us, ratio).

Run: python bench/space_speed.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spaces.core import Categorical as ACat, Ordinal as AOrd  # noqa: E402
from spaces.library import quicktune  # noqa: E402


def configspace_quicktune(space):
    """The same space built with the ConfigSpace API (values read from archtune's definition)."""
    from ConfigSpace import (CategoricalHyperparameter, ConfigurationSpace, EqualsCondition,
                             InCondition, OrdinalHyperparameter)
    from spaces.core import Equals, In

    cs = ConfigurationSpace(seed=0)
    hps = {}
    for name, p in space.params.items():
        if isinstance(p, ACat):
            hps[name] = CategoricalHyperparameter(name, list(p.choices))
        elif isinstance(p, AOrd):
            hps[name] = OrdinalHyperparameter(name, list(p.sequence))
        else:
            raise TypeError(name)
    cs.add(*hps.values())
    conds = []
    for c in space.conditions:
        if isinstance(c, Equals):
            conds.append(EqualsCondition(hps[c.child], hps[c.parent], c.value))
        elif isinstance(c, In):
            conds.append(InCondition(hps[c.child], hps[c.parent], list(c.values)))
    cs.add(*conds)
    return cs


def timeit(fn, repeat: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(repeat):
            fn()
        best = min(best, (time.perf_counter() - t) / repeat)
    return best * 1e6


def main() -> None:
    space = quicktune()
    cs = configspace_quicktune(space)
    rng = np.random.default_rng(0)

    def at_single():
        space.validate(space.sample(rng))

    def at_batch():
        space.sample(rng, 1000)

    rows = [
        ("sample+validate x1", timeit(at_single, 2000), timeit(cs.sample_configuration, 300)),
        ("sample n=1000", timeit(at_batch, 5), timeit(lambda: cs.sample_configuration(1000), 3)),
        ("validate x1", timeit(lambda c=space.sample(rng): space.validate(c), 5000),
         timeit(lambda c=cs.sample_configuration(): c.check_valid_configuration(), 2000)),
    ]
    print("| op | archtune us | ConfigSpace us | ratio (ConfigSpace / archtune) |")
    print("|---|---:|---:|---:|")
    for op, a, c in rows:
        print(f"| {op} | {a:.1f} | {c:.1f} | {c / a:.1f}x |")


if __name__ == "__main__":
    main()
