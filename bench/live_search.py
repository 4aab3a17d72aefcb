"""Live (not replayed) search quality on a recorded task: archtune's default search vs two peers.

    python bench/live_search.py                        # digits, 3 seeds, 100 s per run
    python bench/live_search.py --task photo_crops --budget 60
    python bench/live_search.py --seeds 1 --budget 30  # a quick look

The task is one of :mod:`bench.record_curves` (its data settings, fixed parameters and
12 epochs over ``quicktune_cpu``, model included). The ``quick`` portfolio's recorded
configurations are rebuilt from the *other* tasks' tables (leave-one-task-out, as in the
replay benchmark), so no configuration chosen on the task's own table is tried first. Three
methods, each given the same wall-clock
budget (Ray Tune's ``time_budget_s``, counted from the start of the tuning loop) with 2 trials
at a time on 1 CPU each:

- ``archtune quick+fifo``: ``orchestrator.run`` with no searcher named (``quick``) and FIFO;
- ``random+fifo``: ``orchestrator.run`` with ``searcher: random`` and FIFO (Ray Tune's default);
- ``ray OptunaSearch+ASHA``: ``ray.tune.Tuner`` with Ray's own ``OptunaSearch`` over
  ``to_optuna(space)`` and ``ASHAScheduler(max_t=12, grace_period=1)``, as a Ray Tune user writes
  it; only the trainable (archtune's ``finetune`` trainer behind its Ray adapter) is shared.

Methods are interleaved within each seed (seed 0: all three, then seed 1 ...) so that load from
other jobs on the machine falls on all of them alike. Every ``ctx.report`` of every trial is
logged with its time (:func:`logging_trainer`); a run's score is the best ``val_acc`` any trial
reported (Tune stops every trial when the budget runs out; 0.0 when none reported).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.record_curves import TASKS, _task_data

__all__ = ["METHODS", "logging_trainer", "main", "run_method"]

METRIC = "val_acc"
CONCURRENT = 2
#: replay order per task at small budgets (bench/RESULTS.md, mean regret @2 and @5): best first
REPLAY_ORDER = {
    "digits": ("archtune quick+fifo", "ray OptunaSearch+ASHA", "random+fifo"),
    "digits_transfer": ("archtune quick+fifo", "ray OptunaSearch+ASHA", "random+fifo"),
    "photo_crops": ("archtune quick+fifo", "ray OptunaSearch+ASHA", "random+fifo"),
}
TASK = "digits"


class _Logger:
    """A TrialContext proxy appending each report's metric and time to a JSON-lines file."""

    def __init__(self, ctx: Any, path: str) -> None:
        self._ctx, self._path = ctx, path

    def report(self, metrics: dict, checkpoint_dir: Any = None) -> None:
        if METRIC in metrics:
            with open(self._path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"t": time.time(), METRIC: float(metrics[METRIC])}) + "\n")
        self._ctx.report(metrics, checkpoint_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def logging_trainer(config: dict, ctx: Any) -> None:
    """The ``finetune`` trainer, logging every report to the file named by ``_log_to``."""
    from trainers import get_trainer

    cfg = dict(config)
    path = cfg.pop("_log_to")
    get_trainer("finetune")(cfg, _Logger(ctx, path))


def _experiment(searcher: str | None, seed: int, budget_s: float, log: Path, work: Path) -> Any:
    from orchestrator.spec import Experiment, ResourcesSpec, SchedulerSpec, SearcherSpec

    spec = TASKS[TASK]
    data, _ = _task_data(TASK)
    kwargs = {"searcher": SearcherSpec(type=searcher, seed=seed)} if searcher else {}
    return Experiment(
        name=f"live_{searcher or 'default'}_{seed}_{int(time.time())}", space="quicktune_cpu",
        fixed=dict(spec["fixed"]), trainer="bench.live_search:logging_trainer",
        data={**data, "_log_to": str(log)}, scheduler=SchedulerSpec(type="fifo"),
        num_samples=10_000, max_concurrent=CONCURRENT, resources=ResourcesSpec(cpu=1),
        max_epochs=spec["max_epochs"], storage=str(work), max_failures=0,
        time_budget_s=budget_s, seed=seed, **kwargs)


def _archtune(searcher: str | None) -> Callable[[int, float, Path, Path], None]:
    def method(seed: int, budget_s: float, log: Path, work: Path) -> None:
        from orchestrator import run

        run(_experiment(searcher, seed, budget_s, log, work))
    return method


@functools.lru_cache(maxsize=1)
def _compiled_space() -> Any:
    from spaces.compile.optuna import to_optuna

    return to_optuna(_experiment(None, 0, 1.0, Path("-"), Path("-")).load_space())


def define_by_run(trial: Any) -> dict:
    """The space as a Ray Tune user hands it to ``OptunaSearch``: a module-level define-by-run
    function (Ray pickles the searcher, with its space, into each experiment snapshot)."""
    return _compiled_space()(trial)


def _ray_optuna_asha(seed: int, budget_s: float, log: Path, work: Path) -> None:
    """Ray Tune's OptunaSearch + ASHAScheduler as a Ray Tune user writes them."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from orchestrator.runner import _trainable

    exp = _experiment(None, seed, budget_s, log, work)
    space = exp.load_space()
    tuner = tune.Tuner(
        _trainable(exp, space),
        tune_config=tune.TuneConfig(
            metric=METRIC, mode="max",
            search_alg=OptunaSearch(space=define_by_run, metric=METRIC, mode="max", seed=seed),
            scheduler=ASHAScheduler(max_t=exp.max_epochs, grace_period=1),
            num_samples=exp.num_samples, max_concurrent_trials=CONCURRENT,
            time_budget_s=budget_s),
        run_config=tune.RunConfig(name=exp.name, storage_path=str(work), verbose=0))
    tuner.fit()


METHODS: dict[str, Callable[[int, float, Path, Path], None]] = {
    "archtune quick+fifo": _archtune(None),
    "random+fifo": _archtune("random"),
    "ray OptunaSearch+ASHA": _ray_optuna_asha,
}


def run_method(name: str, seed: int, budget_s: float, work: Path) -> dict:
    """Run one method once; returns its best ``val_acc`` within the budget and its counts."""
    log = work / f"{name.replace(' ', '_').replace('+', '_')}_{seed}.jsonl"
    log.unlink(missing_ok=True)
    log.touch()
    start = time.time()
    METHODS[name](seed, budget_s, log, work)
    wall = time.time() - start
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    t0 = min((r["t"] for r in rows), default=start)
    return {"method": name, "seed": seed, "best": max((r[METRIC] for r in rows), default=0.0),
            "reports": len(rows), "wall_s": round(wall, 1),
            "first_report_s": round(t0 - start, 1)}


def _table(results: list[dict], seeds: list[int]) -> str:
    lines = ["| method | " + " | ".join(f"seed {s}" for s in seeds) + " | mean |",
             "|---|" + "---|" * (len(seeds) + 1)]
    means = {}
    for name in METHODS:
        vals = [r["best"] for r in results if r["method"] == name]
        means[name] = statistics.fmean(vals) if vals else float("nan")
        cells = [f"{r['best']:.3f}" for r in results if r["method"] == name]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {means[name]:.3f} |")
    order = sorted(means, key=lambda n: -means[n])
    lines.append("")
    lines.append("live order (best first): " + " > ".join(order))
    lines.append(f"replay order ({TASK}, regret @2/@5): " + " > ".join(REPLAY_ORDER[TASK]))
    lines.append(f"same order: {'yes' if tuple(order) == REPLAY_ORDER[TASK] else 'no'}")
    return "\n".join(lines)


def _use_task(task: str) -> None:
    """Run on ``task``, with the ``quick`` portfolio rebuilt from the other tasks' tables (the
    searcher lives in this driver process, so replacing the list here is what it reads)."""
    global TASK
    from orchestrator.quick import portfolio
    from trainers.replay import load_table

    TASK = task
    others = [load_table(p) for p in sorted((ROOT / "bench" / "data").glob("*.json.gz"))]
    others = [t for t in others if t.get("space", "quicktune_cpu") == "quicktune_cpu"]
    portfolio.RECORDED_BEST[:] = portfolio.best_across_tables(others, k=4, exclude_task=task)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(REPLAY_ORDER), default=TASK)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=100.0, help="wall-clock seconds per run")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    args = ap.parse_args(argv)
    _use_task(args.task)

    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    work = Path(tempfile.mkdtemp(prefix="archtune_live_"))
    ray.init(num_cpus=CONCURRENT, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    results, seeds = [], list(range(args.seeds))
    try:
        for seed in seeds:
            for name in METHODS:
                res = run_method(name, seed, args.budget, work)
                print(json.dumps(res), flush=True)
                results.append(res)
    finally:
        ray.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"\n{TASK}, live, {args.budget:.0f} s wall clock per run, {CONCURRENT} trials at a "
          f"time, best {METRIC} per run\n")
    print(_table(results, seeds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
