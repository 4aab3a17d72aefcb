"""Search quality on recorded learning curves: archtune's searchers vs the peers, side by side.

    python bench/search_quality.py                       # every table in bench/data, 10 seeds
    python bench/search_quality.py --seeds 2 --budgets 1 2 --tasks digits   # a smoke run

Every method runs on the same recorded tables (seeds 1000, 1001, ...: never the recording's own
seed, so random search does not replay the table's order) (``bench/data/TASK.json.gz``, made by
``bench/record_curves.py``), with the same seeds and the same budget: recorded training seconds,
reported in units of one full training of the default recipe (:data:`DEFAULT_RECIPE` of
``orchestrator.quick.portfolio``; its own row of the table). A discrete-event simulator plays
the recorded curves in simulated time with ``--workers`` trials at once: each result arrives when
its recorded epoch time has passed, so asynchronous schedulers see results in the order a live
run would. The searcher and scheduler objects are the real ones (archtune's factories, Ray Tune's
``OptunaSearch`` and ``ASHAScheduler``, Optuna's samplers and pruners); only Ray's trial
execution is replaced by the simulator. Configurations missing from a table are answered by
their nearest recorded neighbour (1-NN, :class:`trainers.replay.ReplayTable`); the count per
method is reported.

Metric: normalized regret ``(y_best - incumbent) / (y_best - y_worst)`` (Quick-Tune's), where
``y_best``/``y_worst`` are the best/worst per-configuration peak val_acc of the table and the
incumbent is the best val_acc seen at any epoch so far; mean and 95 % interval over seeds.
"""
from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import itertools
import json
import math
import sys
import time
import types
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["Trace", "simulate", "run_optuna", "METHODS", "evaluate", "main"]

BUDGETS = (1, 2, 5, 10, 20)
METRIC = "val_acc"


class Trace:
    """What one search run saw: ``(cost_s, incumbent)`` after each result, 1-NN answers."""

    def __init__(self) -> None:
        self.points: list[tuple[float, float]] = []
        self.best = -math.inf
        self.used = 0.0
        self.nn = 0
        self.trials = 0

    def add(self, cost: float, value: float | None) -> None:
        self.used += cost
        if value is not None and value > self.best:
            self.best = value
        self.points.append((self.used, self.best))

    def incumbent_at(self, budget_s: float) -> float:
        best = -math.inf
        for used, inc in self.points:
            if used > budget_s:
                break
            best = inc
        return best


# ----------------------------------------------------------------------------- the simulator
def _lookup(table: Any, cfg: dict, trace: Trace) -> int:
    row, nn = table.lookup(cfg)
    trace.nn += int(nn)
    trace.trials += 1
    return row


def simulate(table: Any, searcher: Any, scheduler: Any, budget_s: float, *,
             workers: int = 2, max_epochs: int | None = None) -> Trace:
    """Run a Ray Tune ``searcher`` (+ optional ``TrialScheduler``) on a recorded table in
    simulated time until ``budget_s`` recorded seconds are spent."""
    from ray.tune.schedulers import TrialScheduler
    from ray.tune.search import Searcher

    from orchestrator.adapter import DUPLICATE_KEY, REUSE_KEY

    max_epochs = max_epochs or table.max_epochs
    trace, clock, events, running = Trace(), 0.0, [], {}
    ids, finished = itertools.count(), False

    def start(tid: str, cfg: dict) -> None:
        trial = types.SimpleNamespace(trial_id=tid, config=cfg)
        if scheduler is not None:
            scheduler.on_trial_add(None, trial)
        row = _lookup(table, cfg, trace)
        running[tid] = (trial, row)
        fail = table.failure(row)
        delay = fail[1] if fail else table.curve(row)[1][0]
        heapq.heappush(events, (clock + delay, next(ids), tid, 0))

    while trace.used < budget_s:
        while not finished and len(running) < workers:
            tid = f"t{trace.trials:05d}"
            cfg = searcher.suggest(tid)
            if cfg is None or cfg == Searcher.FINISHED:
                finished = cfg == Searcher.FINISHED
                break
            cfg = {k: v for k, v in cfg.items() if k not in (DUPLICATE_KEY, REUSE_KEY)}
            start(tid, cfg)
        if not events:
            break
        clock, _, tid, epoch = heapq.heappop(events)
        trial, row = running[tid]
        fail = table.failure(row)
        if fail:
            trace.add(fail[1], None)
            searcher.on_trial_complete(tid, None, error=True)
            if scheduler is not None:
                scheduler.on_trial_error(None, trial)
            del running[tid]
            continue
        accs, secs = table.curve(row)
        trace.add(secs[epoch], accs[epoch])
        last = epoch + 1 >= min(len(accs), max_epochs)
        result = {METRIC: accs[epoch], "training_iteration": epoch + 1, "epoch": epoch + 1,
                  "epoch_time_s": secs[epoch], "time_this_iter_s": secs[epoch],
                  "diverged": int(last and bool(table.rows[row].get("diverged")))}
        decision = TrialScheduler.CONTINUE
        if scheduler is not None and not last:
            decision = scheduler.on_trial_result(None, trial, result)
        searcher.on_trial_result(tid, result)
        if last or decision in (TrialScheduler.STOP, TrialScheduler.PAUSE):
            searcher.on_trial_complete(tid, result)
            if scheduler is not None:
                scheduler.on_trial_complete(None, trial, result)
            del running[tid]
        else:
            heapq.heappush(events, (clock + secs[epoch + 1], next(ids), tid, epoch + 1))
    return trace


def run_optuna(table: Any, space: Any, budget_s: float, seed: int, pruner: str) -> Trace:
    """Optuna as an Optuna user writes it: ``TPESampler`` + a pruner, ask/tell, one trial at a
    time, ``trial.report`` each epoch and ``should_prune``."""
    import optuna

    from spaces.compile.optuna import to_optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pr = (optuna.pruners.SuccessiveHalvingPruner() if pruner == "sh" else
          optuna.pruners.HyperbandPruner(min_resource=1, max_resource=table.max_epochs))
    study = optuna.create_study(direction="maximize", pruner=pr,
                                sampler=optuna.samplers.TPESampler(seed=seed))
    fn, trace = to_optuna(space), Trace()
    while trace.used < budget_s:
        trial = study.ask()
        row = _lookup(table, fn(trial), trace)
        fail = table.failure(row)
        if fail:
            trace.add(fail[1], None)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        accs, secs = table.curve(row)
        state, value = optuna.trial.TrialState.COMPLETE, None
        for e, (acc, sec) in enumerate(zip(accs, secs)):
            trace.add(sec, acc)
            value = acc
            trial.report(acc, e + 1)
            if trace.used >= budget_s:
                break
            if trial.should_prune():
                state = optuna.trial.TrialState.PRUNED
                break
        study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None,
                   state=state)
    return trace


def run_fixed(table: Any, configs: list[dict], budget_s: float) -> Trace:
    """Train the given configurations in order (the default recipe alone, ``space.default()``)."""
    trace = Trace()
    for cfg in itertools.cycle(configs):
        row = _lookup(table, cfg, trace)
        accs, secs = table.curve(row)
        for acc, sec in zip(accs, secs):
            trace.add(sec, acc)
        if trace.used >= budget_s or not accs:
            break
    return trace


# ----------------------------------------------------------------------------- the methods
def _experiment(table: Any, searcher: str, scheduler: str, seed: int):
    from orchestrator.spec import Experiment, SchedulerSpec, SearcherSpec

    opts = {"grace_period": 1, "reduction_factor": 3} if scheduler == "asha" else {}
    return Experiment(name=f"sq_{table.task}", space=table.table.get("space", "quicktune_cpu"),
                      fixed=dict(table.table.get("fixed", {})), trainer="replay",
                      metric=METRIC, mode="max", seed=seed, max_epochs=table.max_epochs,
                      searcher=SearcherSpec(type=searcher, seed=seed),
                      scheduler=SchedulerSpec(type=scheduler, options=opts))


def _archtune(searcher: str, scheduler: str) -> Callable:
    def method(ctx: dict) -> Trace:
        from orchestrator.registries import SCHEDULERS, SEARCHERS

        exp = _experiment(ctx["table"], searcher, scheduler, ctx["seed"])
        space = ctx["table"].space
        if searcher == "quick":
            from orchestrator.quick import make_policy
            from orchestrator.quick.searcher import QuickSearcher

            policy = make_policy(exp, space, portfolio=ctx["portfolio"])
            s = QuickSearcher(policy, metric=METRIC, mode="max")
        else:
            s = SEARCHERS.create(searcher, exp, space)
        sched = SCHEDULERS.create(scheduler, exp, space)
        if sched is not None:
            sched.set_search_properties(METRIC, "max")
        return simulate(ctx["table"], s, sched, ctx["budget_s"], workers=ctx["workers"])
    return method


def _ray_optuna_asha(ctx: dict) -> Trace:
    """Ray Tune's OptunaSearch + ASHAScheduler as a Ray Tune user writes them."""
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from spaces.compile.optuna import to_optuna

    table = ctx["table"]
    searcher = OptunaSearch(space=to_optuna(table.space), metric=METRIC, mode="max",
                            seed=ctx["seed"])
    sched = ASHAScheduler(metric=METRIC, mode="max", max_t=table.max_epochs, grace_period=1)
    return simulate(table, searcher, sched, ctx["budget_s"], workers=ctx["workers"])


def _syne_config_space(space: Any) -> dict:
    from syne_tune.config_space import choice, ordinal

    out: dict[str, Any] = {}
    for name in space.names:
        p = space[name]
        kind = type(p).__name__
        if kind == "Constant":
            out[name] = p.value
        elif kind == "Ordinal":
            vals = list(p.sequence)
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in vals) and all(a < b for a, b in zip(vals, vals[1:]))
            if numeric and len({type(v) for v in vals}) > 1:
                vals = [float(v) for v in vals]
            out[name] = ordinal(vals, kind="nn" if numeric else "equal")
        else:
            out[name] = choice(list(p.choices))
    return out


def _syne_tune(scheduler: str) -> Callable:
    """Syne Tune on its own simulator backend over the table: a ``Blackbox`` whose objective
    is the recorded curve (1-NN outside the table; a recorded failure is val_acc 0 with its
    cost spread over the epochs, as Syne Tune's blackboxes have no failures), one worker so
    its simulated wall-clock time equals recorded compute."""
    def method(ctx: dict) -> Trace:
        import logging

        from syne_tune import StoppingCriterion, Tuner
        from syne_tune.backend.simulator_backend.simulator_backend import SimulatorConfig
        from syne_tune.backend.simulator_backend.simulator_callback import SimulatorCallback
        from syne_tune.blackbox_repository.blackbox import Blackbox
        from syne_tune.blackbox_repository.simulated_tabular_backend import UserBlackboxBackend
        from syne_tune.config_space import randint
        from syne_tune.optimizer import baselines

        logging.getLogger("syne_tune").setLevel(logging.ERROR)
        table, trace = ctx["table"], Trace()
        epochs = table.max_epochs

        class TableBlackbox(Blackbox):
            fidelity_values = np.arange(1, epochs + 1)

            def _objective_function(self, configuration, fidelity=None, seed=None):
                cfg = table.space.canonical(dict(configuration))
                row = _lookup(table, cfg, trace)
                fail = table.failure(row)
                if fail:
                    accs, secs = [0.0] * epochs, [fail[1] / epochs] * epochs
                else:
                    accs, secs = table.curve(row)
                    accs = list(accs) + [accs[-1]] * (epochs - len(accs))
                    secs = list(secs) + [secs[-1]] * (epochs - len(secs))
                return np.column_stack([accs, np.cumsum(secs)])

        space = _syne_config_space(table.space)
        bb = TableBlackbox(configuration_space=space, fidelity_space={"epoch": randint(1, epochs)},
                           objectives_names=[METRIC, "elapsed_time"])
        # a live Syne Tune tuner polls every 5 s and results arrive 0.05 s late: in simulated
        # time those would be charged to the budget, which no other method here pays
        backend = UserBlackboxBackend(
            blackbox=bb, elapsed_time_attr="elapsed_time", tuner_sleep_time=0.0,
            simulator_config=SimulatorConfig(delay_on_trial_result=0.0,
                                             delay_complete_after_final_report=0.0,
                                             delay_complete_after_stop=0.0, delay_start=0.0,
                                             delay_stop=0.0))
        cls = getattr(baselines, scheduler)
        sched = cls(space, metric=METRIC, do_minimize=False, time_attr="epoch", max_t=epochs,
                    random_seed=ctx["seed"], grace_period=1, reduction_factor=3)
        tuner = Tuner(trial_backend=backend, scheduler=sched, n_workers=1, sleep_time=0,
                      stop_criterion=StoppingCriterion(max_wallclock_time=ctx["budget_s"]),
                      callbacks=[SimulatorCallback()], results_update_interval=1e9,
                      print_update_interval=1e9, save_tuner=False,
                      tuner_name=f"sq-{table.task}-{scheduler.lower()}-{ctx['seed']}")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            tuner.run()   # its progress tables are noise in the benchmark's output
        df = tuner.callbacks[0].dataframe()
        last: dict[Any, float] = {}
        for _, r in df.sort_values("st_tuner_time").iterrows():
            cost = float(r["elapsed_time"]) - last.get(r["trial_id"], 0.0)
            last[r["trial_id"]] = float(r["elapsed_time"])
            trace.add(cost, float(r[METRIC]))
        trace.trials = int(df["trial_id"].nunique()) if len(df) else 0
        return trace
    return method


def _recipe(ctx: dict) -> Trace:
    from orchestrator.quick.portfolio import DEFAULT_RECIPE

    return run_fixed(ctx["table"], [_fit(ctx["table"].space, DEFAULT_RECIPE)], ctx["budget_s"])


def _space_default(ctx: dict) -> Trace:
    return run_fixed(ctx["table"], [ctx["table"].space.default()], ctx["budget_s"])


def _fit(space: Any, cfg: dict) -> dict:
    base = dict(space.default())
    base.update({k: v for k, v in cfg.items() if k in space and space[k].contains(v)})
    return space.canonical(base)


METHODS: dict[str, Callable[[dict], Trace]] = {
    "default recipe": _recipe,
    "space.default()": _space_default,
    "random+fifo": _archtune("random", "fifo"),
    "random+asha": _archtune("random", "asha"),
    "optuna tpe+sh (standalone)": lambda c: run_optuna(c["table"], c["table"].space,
                                                        c["budget_s"], c["seed"], "sh"),
    "optuna tpe+hyperband (standalone)": lambda c: run_optuna(c["table"], c["table"].space,
                                                               c["budget_s"], c["seed"], "hb"),
    "ray OptunaSearch+ASHA": _ray_optuna_asha,
    "syne-tune ASHA (simulator)": _syne_tune("ASHA"),
    "syne-tune BOHB (simulator)": _syne_tune("BOHB"),
    "archtune tpe+fifo": _archtune("tpe", "fifo"),
    "archtune tpe+asha": _archtune("tpe", "asha"),
    "archtune quick+fifo": _archtune("quick", "fifo"),
    "archtune quick+asha": _archtune("quick", "asha"),
}
PEERS = ("random+fifo", "random+asha", "optuna tpe+sh (standalone)",
         "optuna tpe+hyperband (standalone)", "ray OptunaSearch+ASHA",
         "syne-tune ASHA (simulator)", "syne-tune BOHB (simulator)")
DEFAULT_SEARCH = "archtune quick+fifo"


# ----------------------------------------------------------------------------- evaluation
def unit_seconds(table: Any) -> float:
    """Recorded seconds of one full training of the default recipe on this table."""
    from orchestrator.quick.portfolio import DEFAULT_RECIPE

    row, nn = table.lookup(_fit(table.space, DEFAULT_RECIPE))
    secs = table.curve(row)[1]
    if nn or len(secs) < table.max_epochs:
        full = [sum(r["epoch_s"]) for r in table.rows
                if not r.get("error") and len(r["epoch_s"]) == table.max_epochs]
        return float(np.median(full))
    return float(sum(secs))


def _bounds(table: Any) -> tuple[float, float]:
    peaks = [max(r["val_acc"]) for r in table.rows if r["val_acc"] and not r.get("error")]
    return max(peaks), min(peaks)


def evaluate(tables: dict[str, Any], methods: list[str], seeds: int, budgets: list[float],
             workers: int = 2, log: Callable[[str], None] = print,
             tasks: list[str] | None = None) -> dict:
    """Regret per task, method and budget: ``{task: {method: {"regret": [[per seed] per
    budget]], "nn": n, "trials": n, "seconds": s}}}`` plus each task's ``unit_s``.

    ``tasks`` (default: all) are scored; the ``quick`` portfolio of a task is built from the
    *other* tables only (leave-one-task-out), so every table counts even when not scored."""
    from orchestrator.quick.portfolio import best_across_tables, default_portfolio

    out: dict[str, Any] = {}
    for task, table in tables.items():
        if tasks and task not in tasks:
            continue
        unit = unit_seconds(table)
        y_best, y_worst = _bounds(table)
        others = [t.table for name, t in tables.items()
                  if name != task and t.table.get("space") == table.table.get("space")]
        recorded = best_across_tables(others, k=4) if others else []
        portfolio = default_portfolio(table.space, recorded=recorded)
        out[task] = {"unit_s": unit, "y_best": y_best, "y_worst": y_worst, "methods": {}}
        for name in methods:
            started, regrets, nn, trials = time.time(), [], 0, 0
            for seed in range(seeds):
                ctx = {"table": table, "seed": 1000 + seed, "budget_s": max(budgets) * unit,
                       "workers": workers, "portfolio": portfolio}
                trace = METHODS[name](ctx)
                nn, trials = nn + trace.nn, trials + trace.trials
                inc = [trace.incumbent_at(b * unit) for b in budgets]
                regrets.append([(y_best - (v if v > -math.inf else y_worst))
                                / max(1e-9, y_best - y_worst) for v in inc])
            out[task]["methods"][name] = {"regret": np.array(regrets).T.tolist(), "nn": nn,
                                          "trials": trials,
                                          "seconds": round(time.time() - started, 1)}
            log(f"{task:16s} {name:34s} " + " ".join(
                f"{np.mean(r):.3f}" for r in np.array(regrets).T) + f"  ({time.time() - started:.0f} s)")
    return out


def _ci(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), 0.0
    from scipy import stats

    half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean()), float(half)


def table_markdown(res: dict, budgets: list[float], seeds: int) -> str:
    """One markdown table per task: mean regret +- 95 % half-width per budget, 1-NN count."""
    lines = []
    for task, r in res.items():
        lines += [f"**{task}** (1 unit = {r['unit_s']:.1f} recorded s; table best "
                  f"{r['y_best']:.3f}, worst {r['y_worst']:.3f}; {seeds} seeds)", "",
                  "| method | " + " | ".join(f"regret @{b:g}" for b in budgets)
                  + " | configs (1-NN answered) |",
                  "|---|" + "---|" * len(budgets) + "---|"]
        for name, m in r["methods"].items():
            cells = []
            for per_seed in m["regret"]:
                mean, half = _ci(per_seed)
                cells.append(f"{mean:.3f} ± {half:.3f}")
            lines.append(f"| {name} | " + " | ".join(cells)
                         + f" | {m['trials']} ({m['nn']}) |")
        lines.append("")
    return "\n".join(lines)


def plot(res: dict, budgets: list[float], folder: Path) -> list[Path]:
    """``regret_TASK.png`` per task: mean regret vs budget with 95 % bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for task, r in res.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, m in r["methods"].items():
            stats_ = [_ci(s) for s in m["regret"]]
            mean = np.array([s[0] for s in stats_])
            half = np.array([s[1] for s in stats_])
            style = "-" if name.startswith("archtune quick") else "--"
            ax.plot(budgets, mean, style, marker="o", ms=3, label=name,
                    lw=2.5 if name == DEFAULT_SEARCH else 1.2)
            ax.fill_between(budgets, np.maximum(mean - half, 0), mean + half, alpha=0.12)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.set_xlabel("budget (full trainings of the default recipe)")
        ax.set_ylabel("normalized regret")
        ax.set_title(f"{task}: search quality on recorded curves")
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = folder / f"regret_{task}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def load_tables(paths: list[Path]) -> dict[str, Any]:
    from trainers.replay import ReplayTable, load_table

    out = {}
    for p in paths:
        t = ReplayTable(load_table(p))
        out[t.task] = t
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tables", type=Path, nargs="*", default=None)
    ap.add_argument("--tasks", nargs="*", default=None)
    ap.add_argument("--space", default="quicktune_cpu",
                    help="only the tables recorded over this space (default: the fine-tuning "
                         "space, whose default recipe defines the budget unit)")
    ap.add_argument("--methods", nargs="*", default=None, choices=list(METHODS) + [[]])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--budgets", type=float, nargs="*", default=list(BUDGETS))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench")
    ap.add_argument("--json", type=Path, default=None, help="also write the raw regrets here")
    ap.add_argument("--merge", type=Path, nargs="*", default=None,
                    help="no run: print the table and plots of --json files of earlier runs "
                         "(e.g. one process per task)")
    args = ap.parse_args(argv)
    if args.merge:
        res = {}
        for path in args.merge:
            for task, r in json.loads(path.read_text()).items():
                res.setdefault(task, {**r, "methods": {}})["methods"].update(r["methods"])
        return _write(res, args)
    paths = args.tables or sorted((ROOT / "bench" / "data").glob("*.json.gz"))
    tables = {k: v for k, v in load_tables(paths).items()
              if v.table.get("space", "quicktune_cpu") == args.space}
    methods = args.methods or list(METHODS)
    res = evaluate(tables, methods, args.seeds, args.budgets, args.workers, tasks=args.tasks)
    if args.json:
        args.json.write_text(json.dumps(res))
    return _write(res, args)


def _write(res: dict, args: argparse.Namespace) -> int:
    seeds = {len(m["regret"][0]) for r in res.values() for m in r["methods"].values()}
    print(table_markdown(res, args.budgets, max(seeds)))
    args.out.mkdir(parents=True, exist_ok=True)
    for p in plot(res, args.budgets, args.out):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
