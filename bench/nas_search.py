"""Evolution and local search vs random search and TPE on a recorded NAS table.

    python bench/nas_search.py                         # 10 seeds, bench/data/nas_*.json.gz
    python bench/nas_search.py --seeds 2 --budgets 1 5 # a smoke run

The table (``bench/data/nas_mnasnet_digits.json.gz``, made by ``bench/record_nas_curves.py``)
is replayed by the search-quality harness of ``bench/search_quality.py`` (its discrete-event
simulator, 2 workers, the real searcher and scheduler objects, normalized regret over seeds
1000...; budgets in full trainings of ``space.default()``). The methods are the harness's random,
TPE, standalone-Optuna and ``quick`` (archtune's default search) rows plus archtune's
``evolution`` (regularized evolution, population ``--population``, tournament ``--sample``) and
``local`` searchers, each with FIFO and with ASHA; ``--methods`` picks rows.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import search_quality as sq

__all__ = ["main", "nas_methods"]

BASELINES = ("random+fifo", "random+asha", "archtune tpe+fifo", "archtune tpe+asha",
             "optuna tpe+sh (standalone)", "archtune quick+fifo", "archtune quick+asha")


def _variation_method(searcher: str, scheduler: str, options: dict[str, Any]) -> Callable:
    """A harness method running archtune's ``searcher`` (with ``options``) + ``scheduler``."""
    def method(ctx: dict) -> sq.Trace:
        import dataclasses

        from orchestrator.registries import SCHEDULERS, SEARCHERS
        from orchestrator.spec import SearcherSpec

        exp = sq._experiment(ctx["table"], searcher, scheduler, ctx["seed"])
        exp = dataclasses.replace(exp, searcher=SearcherSpec(type=searcher, seed=ctx["seed"],
                                                             **options))
        space = ctx["table"].space
        s = SEARCHERS.create(searcher, exp, space)
        sched = SCHEDULERS.create(scheduler, exp, space)
        if sched is not None:
            sched.set_search_properties(sq.METRIC, "max")
        return sq.simulate(ctx["table"], s, sched, ctx["budget_s"], workers=ctx["workers"])
    return method


def nas_methods(population: int, sample: int, mutation_prob: float) -> dict[str, Callable]:
    """The evolution and local-search rows (added to the harness's ``METHODS``)."""
    evo = {"population_size": population, "sample_size": sample, "mutation_prob": mutation_prob}
    return {
        "archtune evolution+fifo": _variation_method("evolution", "fifo", evo),
        "archtune evolution+asha": _variation_method("evolution", "asha", evo),
        "archtune local+fifo": _variation_method("local", "fifo", {}),
        "archtune local+asha": _variation_method("local", "asha", {}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=Path, nargs="*", default=None)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budgets", type=float, nargs="*", default=list(sq.BUDGETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--population", type=int, default=10)
    ap.add_argument("--sample", type=int, default=3)
    ap.add_argument("--mutation-prob", type=float, default=0.2)
    ap.add_argument("--json", type=Path, default=None, help="also write the raw regrets here")
    ap.add_argument("--plots", type=Path, default=None, help="write regret plots here")
    ap.add_argument("--methods", nargs="*", default=None,
                    help="only these rows (default: the baselines, quick and ours)")
    args = ap.parse_args(argv)
    ours = nas_methods(args.population, args.sample, args.mutation_prob)
    sq.METHODS.update(ours)
    methods = args.methods or list(BASELINES) + list(ours)
    unknown = sorted(set(methods) - set(sq.METHODS))
    if unknown:
        ap.error(f"--methods: unknown {unknown}; valid: {sorted(sq.METHODS)}")
    paths = args.tables or sorted((ROOT / "bench" / "data").glob("nas_*.json.gz"))
    tables = sq.load_tables(paths)
    res = sq.evaluate(tables, methods, args.seeds, args.budgets, args.workers)
    print(sq.table_markdown(res, args.budgets, args.seeds))
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        for p in sq.plot(res, args.budgets, args.plots):
            print(f"wrote {p}")
    if args.json:
        args.json.write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
