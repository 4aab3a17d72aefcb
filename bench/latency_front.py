"""Latency-aware architecture search moves the Pareto front: an unconstrained run vs one with a
tight ``latency_target``.

    python bench/latency_front.py --out /tmp/latency_runs --target-ms 2.5
    python bench/latency_front.py --out /tmp/latency_runs --trials 8 --epochs 2   # a smoke run

Two archtune experiments over the ``mnasnet`` space (``nas`` trainer, MnasNet classification on
sklearn digits at 16 px, ``width_scale`` 0.25, :data:`DATA`) with the same searcher (TPE, same
seed), trial count and epochs: ``unconstrained`` searches on ``val_acc``; ``latency_<T>ms``
sets ``latency_target`` and searches on the trainer's ``reward`` (MnasNet's soft reward
``val_acc * (T / latency_ms) ** w`` by default, ``--reward hard`` for ``val_acc * min(T /
latency_ms, 1)``). Each trial runs with one CPU (``resources: {cpu: 1}``), so the trainer
measures its batch-1 CPU latency with one torch thread; it reports the fastest of 100 timed
calls (``latency_stat: min``), which other processes on a shared machine can only slow down.

Latencies measured during the runs share the CPUs with the other trial and whatever else runs
on the machine, so at the end every trial's architecture (errored and diverged ones aside) is
rebuilt and re-timed in this one process (one thread, batch 1, :func:`remeasure`: interleaved
rounds; the fastest call, and the lowest round median). The table shows each run's front (on
the runs' own values), its best ``val_acc`` and that architecture's re-timed latency, and the
key figure, once per re-timed statistic: the fastest architecture on the constrained run's
front whose ``val_acc`` is at most ``--max-drop`` below the unconstrained best, and its
speed-up over the unconstrained best. Finally
``archtune report UNCONSTRAINED --compare CONSTRAINED --pareto val_acc:max,latency_ms:min``
draws both fronts on one figure, copied to ``--plot``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["DATA", "experiment", "main", "remeasure", "speedup"]

OBJECTIVES = [("val_acc", "max"), ("latency_ms", "min")]
DATA: dict[str, Any] = {
    "arch": "mnasnet", "dataset": "digits", "image_size": 16, "width_scale": 0.25,
    "batch_size": 64, "device": "cpu", "num_workers": 0, "checkpoint_every": 0,
    "latency_device": "cpu", "latency_warmup": 5, "latency_repeats": 100, "latency_stat": "min",
}


def experiment(name: str, *, storage: Path, trials: int, epochs: int, seed: int,
               concurrent: int, target_ms: float | None = None, reward: str = "soft",
               reward_weight: float = 0.07) -> dict[str, Any]:
    """The experiment dict of one run: ``target_ms`` ``None`` searches on ``val_acc``, else on
    the trainer's ``reward`` for that latency target (ms, > 0)."""
    data = dict(DATA)
    metric = "val_acc"
    if target_ms is not None:
        data.update(latency_target=float(target_ms), reward=reward,
                    reward_weight=float(reward_weight))
        metric = "reward"
    return {
        "name": name, "space": "mnasnet", "trainer": "nas", "data": data,
        "metric": metric, "mode": "max", "max_epochs": epochs, "num_samples": trials,
        "searcher": {"type": "tpe", "seed": seed, "n_startup_trials": max(1, trials // 3)},
        "scheduler": {"type": "fifo"}, "resources": {"cpu": 1},
        "max_concurrent": concurrent, "storage": str(storage), "seed": seed,
        "max_failures": 1,
    }


def _arch_config(row: Mapping[str, Any]) -> dict[str, Any]:
    """The trial's architecture parameters (its ``config/`` cells that are set)."""
    import pandas as pd

    return {k[len("config/"):]: v for k, v in row.items()
            if k.startswith("config/") and not (isinstance(v, float) and pd.isna(v))}


def _build(arch: Mapping[str, Any]) -> tuple[Any, tuple[int, ...]]:
    """The model the ``nas`` trainer builds for ``DATA`` plus ``arch`` (10 digit classes), and
    its batch-1 input shape."""
    from trainers.nas import get_builder
    from trainers.nas.settings import split_config

    cfg, _, builder_cfg = split_config({**DATA, **arch})
    model = get_builder(cfg.arch)(builder_cfg, cfg.task, 10)
    size = cfg.resolved_image_size
    return model, (1, 3, size, size)


def remeasure(archs: Mapping[str, Mapping[str, Any]], *, rounds: int = 5, repeats: int = 30,
              warmup: int = 10, threads: int = 1) -> dict[str, dict[str, float]]:
    """Batch-1 CPU latency (ms) of each architecture, timed in this process with ``threads``
    torch threads, as ``{key: {"min": ms, "median": ms}}`` (keys those of ``archs``).

    ``rounds`` interleaved rounds over all architectures; in each, both statistics of
    ``repeats`` calls after ``warmup`` (:func:`trainers.nas.objectives.measure_latency`,
    ``stat`` min and median); per statistic the lowest round counts (the one least disturbed
    by other processes)."""
    import torch

    from trainers.nas.objectives import measure_latency

    torch.set_num_threads(threads)
    models = {key: _build(arch) for key, arch in archs.items()}
    times: dict[str, dict[str, list[float]]] = {k: {"min": [], "median": []} for k in archs}
    for _ in range(rounds):
        for key, (model, shape) in models.items():
            for stat, values in times[key].items():
                values.append(measure_latency(model, shape, "cpu", warmup, repeats, stat))
    return {key: {stat: float(min(v)) for stat, v in by_stat.items()}
            for key, by_stat in times.items()}


def speedup(unconstrained: Any, constrained: Any, latency: Mapping[str, float],
            max_drop: float) -> dict[str, Any]:
    """The key figure from two :class:`orchestrator.report.ExperimentFront` objects and the
    re-measured ``latency`` by ``trial_id``: the unconstrained best (highest ``val_acc``), the
    fastest trial of the constrained front with ``val_acc >= best - max_drop``, and
    ``speedup`` = the best's latency / that trial's latency (``None`` when no front trial is
    accurate enough)."""
    best = unconstrained.front.sort_values("val_acc", ascending=False).iloc[0]
    ok = constrained.front[constrained.front["val_acc"] >= best["val_acc"] - max_drop - 1e-12]
    out: dict[str, Any] = {"best_trial": best["trial_id"], "best_acc": float(best["val_acc"]),
                           "best_ms": latency[_key(unconstrained, best)], "fast_trial": None,
                           "fast_acc": None, "fast_ms": None, "speedup": None}
    if ok.empty:
        return out
    rows = sorted(ok.to_dict("records"), key=lambda r: latency[_key(constrained, r)])
    fast = rows[0]
    out.update(fast_trial=fast["trial_id"], fast_acc=float(fast["val_acc"]),
               fast_ms=latency[_key(constrained, fast)])
    out["speedup"] = out["best_ms"] / out["fast_ms"]
    return out


def _key(front: Any, row: Mapping[str, Any]) -> str:
    return f"{front.label}/{row['trial_id']}"


def _run_both(args: argparse.Namespace) -> tuple[Path, Path]:
    """Run the unconstrained then the constrained experiment; returns their folders."""
    from orchestrator.runner import run

    storage = args.out.resolve()
    common = {"storage": storage, "trials": args.trials, "epochs": args.epochs,
              "seed": args.seed, "concurrent": args.concurrent}
    target_name = f"latency_{args.target_ms:g}ms"
    if args.reward != "soft" or args.reward_weight != 0.07:
        target_name += f"_{args.reward}" + ("" if args.reward == "hard"
                                            else f"_w{args.reward_weight:g}")
    specs = [experiment("unconstrained", **common),
             experiment(target_name, target_ms=args.target_ms, reward=args.reward,
                        reward_weight=args.reward_weight, **common)]
    dirs = []
    for spec in specs:
        folder = storage / spec["name"]
        if not (folder / "best.json").is_file():
            started = time.time()
            run(spec)
            print(f"{spec['name']}: {time.time() - started:.0f} s", flush=True)
        dirs.append(folder)
    return dirs[0], dirs[1]


def _front_table(fronts: Sequence[Any], timed: Mapping[str, Mapping[str, float]]) -> str:
    """Each run's front: trial, val_acc, params, the run's latency and the re-timed ones."""
    header = (f"{'run':<16} {'trial':<10} {'val_acc':>8} {'params':>8} {'run ms':>8} "
              f"{'min ms':>8} {'median ms':>10}")
    lines = [header]
    for f in fronts:
        params_of = (dict(zip(f.trials["trial_id"], f.trials["params"]))
                     if "params" in f.trials.columns else {})
        for r in f.front.sort_values("latency_ms").to_dict("records"):
            t = timed[_key(f, r)]
            params = params_of.get(r["trial_id"], float("nan"))
            lines.append(f"{f.label:<16} {str(r['trial_id'])[-10:]:<10} {r['val_acc']:>8.4f} "
                         f"{params:>8.0f} {r['latency_ms']:>8.3f} {t['min']:>8.3f} "
                         f"{t['median']:>10.3f}")
    return "\n".join(lines)


def _summary(fronts: Sequence[Any], latency: Mapping[str, float], key: Mapping[str, Any],
             max_drop: float) -> str:
    """The per-run best and the key figure, as text."""
    lines = []
    for f in fronts:
        best = f.front.sort_values("val_acc", ascending=False).iloc[0]
        n = len(f.trials)
        lines.append(f"{f.label}: {n} trials, front {len(f.front)}, best val_acc "
                     f"{best['val_acc']:.4f} ({best['trial_id']}, {latency[_key(f, best)]:.3f} "
                     f"ms re-timed)")
    if key["speedup"] is None:
        lines.append(f"no architecture on the constrained front within {max_drop} of the "
                     f"unconstrained best val_acc {key['best_acc']:.4f}")
    else:
        lines.append(f"fastest constrained-front architecture within {max_drop} val_acc of the "
                     f"unconstrained best: {key['fast_trial']} val_acc {key['fast_acc']:.4f} "
                     f"({key['best_acc'] - key['fast_acc']:+.4f} below), {key['fast_ms']:.3f} ms "
                     f"vs {key['best_ms']:.3f} ms -> speed-up {key['speedup']:.2f}x")
    return "\n".join(lines)


def _save_latencies(fronts: Sequence[Any], timed: Mapping[str, Mapping[str, float]],
                    path: Path) -> None:
    """Every re-timed trial (run, trial, val_acc, the run's and the re-timed latencies) as
    CSV."""
    import pandas as pd

    rows = [{"run": f.label, "trial_id": r["trial_id"], "val_acc": r["val_acc"],
             "run_latency_ms": r["latency_ms"], "min_ms": timed[_key(f, r)]["min"],
             "median_ms": timed[_key(f, r)]["median"], "params": r.get("params"),
             "on_front": r["trial_id"] in set(f.front["trial_id"])}
            for f in fronts for r in f.trials.to_dict("records") if _key(f, r) in timed]
    pd.DataFrame(rows).to_csv(path, index=False)
    print(f"re-timed latencies: {path}")


def _report(dirs: tuple[Path, Path], plot: Path | None) -> list[Any]:
    """The comparison report of both runs (``archtune report A --compare B``); copies
    ``pareto.png`` to ``plot``; returns the fronts."""
    from orchestrator.cli import main as cli_main
    from orchestrator.report import make_report

    argv = ["report", str(dirs[0]), "--compare", str(dirs[1]),
            "--pareto", "val_acc:max,latency_ms:min"]
    print("archtune " + " ".join(argv), flush=True)
    cli_main(argv)
    rep = make_report(dirs[0], plots=False, pareto=OBJECTIVES, compare=[dirs[1]])
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dirs[0] / "report" / "pareto.png", plot)
        print(f"plot copied to {plot}")
    return rep["fronts"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True,
                    help="storage folder of both experiments (a finished one is reused)")
    ap.add_argument("--target-ms", type=float, default=2.5)
    ap.add_argument("--reward", choices=["soft", "hard"], default="soft")
    ap.add_argument("--reward-weight", type=float, default=0.07)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--max-drop", type=float, default=0.02)
    ap.add_argument("--plot", type=Path, default=None, help="copy the combined plot here")
    args = ap.parse_args(argv)
    dirs = _run_both(args)
    fronts = _report(dirs, args.plot)
    archs = {_key(f, r): _arch_config(r) for f in fronts
             for r in f.trials[~f.trials["status"].isin(["errored", "diverged"])]
             .to_dict("records")}
    started = time.time()
    timed = remeasure(archs)
    print(f"\nre-timed {len(archs)} architectures in {time.time() - started:.0f} s (1 thread, "
          f"batch 1, 5 interleaved rounds of 30 calls; min: the fastest call, median: the "
          f"lowest round median; load {os.getloadavg()[0]:.2f})")
    _save_latencies(fronts, timed, args.out / "latency_remeasured.csv")
    print(_front_table(fronts, timed))
    for stat in ("min", "median"):
        latency = {k: v[stat] for k, v in timed.items()}
        key = speedup(fronts[0], fronts[1], latency, args.max_drop)
        print(f"\n[re-timed latency: {stat}]")
        print(_summary(fronts, latency, key, args.max_drop))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
