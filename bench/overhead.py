"""Orchestrator overhead: archtune's runner against plain Ray Tune on a do-nothing trainable.

Every trial reports ``--epochs`` (10) results instantly, so the wall time is pure orchestration:
trial scheduling, actor start-up, result processing, loggers, checkpoint/experiment-state
syncing. Four variants, each in its own Python process (the auto-logger switch is read when Tune
is imported, and each variant gets a fresh local Ray with the same CPUs):

  archtune        orchestrator.run(Experiment(...)) with archtune's defaults, random searcher, fifo
  tune-default    ray.tune.Tuner, random search (BasicVariantGenerator), FIFO, Tune's defaults
  tune-fastest    as tune-default plus reuse_actors=True and TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=1
  tune-fastest+ckpt  tune-fastest writing a tiny checkpoint every epoch (what archtune's trainers do)

Usage::

    python bench/overhead.py                       # 50 trials x 10 epochs, all variants, table
    python bench/overhead.py --trials 50 --repeat 2 --markdown
    python bench/overhead.py --variant archtune    # one variant, prints JSON (used internally)

Timed: the ``fit()`` / ``run()`` call only (Ray start-up is reported apart). "per-trial
overhead" is wall time x concurrent slots / trials: the CPU-slot time one trial costs beyond its
(zero) work.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("archtune", "tune-default", "tune-fastest", "tune-fastest+ckpt")


# ----------------------------------------------------------------------------- trainables
def trivial_trainer(config: dict, ctx) -> None:
    """archtune trainer: ``max_epochs`` instant epochs (no checkpoint: pure orchestration)."""
    x = float(config["x"])
    for epoch in range(1, ctx.max_epochs + 1):
        ctx.report({"epoch": epoch, "val_acc": x * epoch / ctx.max_epochs, "val_loss": 1.0 - x})


def _tune_trainable(epochs: int, checkpoint: bool):
    from ray import tune

    def trivial(config: dict) -> None:
        x = float(config["x"])
        for epoch in range(1, epochs + 1):
            metrics = {"epoch": epoch, "val_acc": x * epoch / epochs, "val_loss": 1.0 - x}
            if checkpoint:
                with tempfile.TemporaryDirectory() as d:
                    Path(d, "state.json").write_text(json.dumps(metrics))
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report(metrics)

    return trivial


# ----------------------------------------------------------------------------- one variant
def run_variant(variant: str, trials: int, epochs: int, cpus: int, storage: str) -> dict:
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    init_s = time.perf_counter() - t0
    try:
        if variant == "archtune":
            from orchestrator import runner
            from orchestrator.spec import Experiment

            exp = Experiment.from_dict({
                "name": "overhead_archtune",
                "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
                "trainer": "bench.overhead:trivial_trainer",
                "metric": "val_acc",
                "mode": "max",
                "searcher": {"type": "random", "seed": 0},
                "scheduler": {"type": "fifo"},
                "num_samples": trials,
                "max_epochs": epochs,
                "storage": storage,
            })
            t1 = time.perf_counter()
            results = runner.run(exp)
            wall = time.perf_counter() - t1
            df = results.dataframe
            n_done = int(len(df))
        else:
            from ray import tune

            trainable = _tune_trainable(epochs, checkpoint=variant.endswith("+ckpt"))
            fast = variant.startswith("tune-fastest")
            tuner = tune.Tuner(
                trainable,
                param_space={"x": tune.uniform(0.0, 1.0)},
                tune_config=tune.TuneConfig(
                    metric="val_acc", mode="max", num_samples=trials,
                    search_alg=tune.search.BasicVariantGenerator(random_state=0),
                    scheduler=tune.schedulers.FIFOScheduler(),
                    reuse_actors=fast,
                ),
                run_config=tune.RunConfig(name=f"overhead_{variant}", storage_path=storage,
                                          verbose=0),
            )
            t1 = time.perf_counter()
            grid = tuner.fit()
            wall = time.perf_counter() - t1
            n_done = sum(1 for r in grid if r.error is None)
    finally:
        ray.shutdown()
    return {
        "variant": variant,
        "trials": trials,
        "completed": n_done,
        "epochs": epochs,
        "cpus": cpus,
        "ray_init_s": init_s,
        "wall_s": wall,
        "trials_per_s": trials / wall,
        "ms_per_trial": 1000.0 * wall / trials,
        "overhead_slot_ms_per_trial": 1000.0 * wall * cpus / trials,
    }


def _spawn(variant: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ)
    env.pop("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", None)
    if variant.startswith("tune-fastest"):
        env["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("RAY_DEDUP_LOGS", "0")
    with tempfile.TemporaryDirectory(prefix="archtune_overhead_") as storage:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--variant", variant,
               "--trials", str(args.trials), "--epochs", str(args.epochs),
               "--cpus", str(args.cpus), "--storage", storage]
        if args.profile:
            cmd += ["--profile", str(Path(args.profile) / f"{variant}.prof")]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
        raise SystemExit(f"variant {variant} failed (exit {proc.returncode})")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return json.loads(line)


def _table(rows: list[dict], markdown: bool) -> str:
    head = ["variant", "trials", "wall s (best)", "all runs s", "trials/s", "ms/trial",
            "slot-ms/trial"]
    body = [[r["variant"], f'{r["completed"]}/{r["trials"]}', f'{r["wall_s"]:.2f}',
             " ".join(f"{w:.1f}" for w in r.get("wall_s_all", [r["wall_s"]])),
             f'{r["trials_per_s"]:.2f}', f'{r["ms_per_trial"]:.0f}',
             f'{r["overhead_slot_ms_per_trial"]:.0f}'] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*head)] + [fmt.format(*b) for b in body])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs given to the local Ray")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant (fastest kept)")
    parser.add_argument("--repeat-default", action="store_true",
                        help="repeat tune-default too (slow)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--profile", default=None, help="folder: cProfile each variant's driver")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--storage", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.variant:  # child process: one measurement, JSON on stdout
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            result = prof.runcall(run_variant, args.variant, args.trials, args.epochs,
                                  args.cpus, args.storage)
            prof.dump_stats(args.profile)
        else:
            result = run_variant(args.variant, args.trials, args.epochs, args.cpus, args.storage)
        print(json.dumps(result), flush=True)
        return

    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    variants = args.variants.split(",")
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for i in range(args.repeat):  # interleaved, so load from other processes hits all alike
        for variant in variants:
            if variant == "tune-default" and i > 0 and not args.repeat_default:
                continue  # ~15x slower than the rest; one run shows the gap
            runs[variant].append(_spawn(variant, args))
            print(f"# {variant} run {i + 1}: {runs[variant][-1]['wall_s']:.2f} s", file=sys.stderr,
                  flush=True)
    rows = []
    for variant in variants:
        best = min(runs[variant], key=lambda r: r["wall_s"])  # least disturbed run
        best["wall_s_all"] = [round(r["wall_s"], 2) for r in runs[variant]]
        rows.append(best)
    print(f"# {args.trials} trials x {args.epochs} instant epochs, {args.cpus} CPUs, "
          f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          f"best of {args.repeat} interleaved runs (tune-default: 1 unless --repeat-default)")
    print(_table(rows, args.markdown))


if __name__ == "__main__":
    main()
