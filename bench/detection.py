"""Detection learning benchmark on the embedded synthetic shapes set (no download).

Trains SpineNet (or NAS-FPN) RetinaNet detectors with the ``nas`` trainer on
:class:`trainers.nas.detection_data.SyntheticShapes` and prints, per model, mAP@50 on the
validation split, wall time and the process's CPU time (the figure to compare on a shared
machine); with ``--random N`` it trains N random architectures of
the space and prints the spread (max - min) of their mAP@50.

    python3 bench/detection.py --space spinenet49 --epochs 6          # SpineNet-49, reduced width
    python3 bench/detection.py --space spinenet --random 10 --epochs 3 [--start 5]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

__all__ = ["SMALL_DETECTOR", "main", "train_one"]

# reduced-width SpineNet / NAS-FPN + RetinaNet settings for a 2-core CPU
SMALL_DETECTOR = {
    "task": "detection", "image_size": 96, "filter_scale": 0.125, "endpoint_filters": 32,
    "head_convs": 2, "head_filters": 32, "anchor_scale": 2.0, "optimizer": "adamw", "lr": 3e-3,
    "weight_decay": 1e-4, "batch_size": 8, "num_train_images": 1024, "num_val_images": 96,
    "grad_clip": 10.0, "warmup_epochs": 1, "latency_repeats": 3, "checkpoint_every": 0,
    "device": "cpu"}
NASFPN_EXTRA = {"fpn_filters": 32, "fpn_repeats": 1, "fpn_backbone": "resnet10t"}


def train_one(arch_config: dict, epochs: int, threads: int = 1, seed: int = 0) -> dict:
    """Train one detector; returns per-epoch map_50, final map_50 and wall seconds."""
    from trainers.api import LocalContext
    from trainers.nas.train import train

    with tempfile.TemporaryDirectory() as d:
        ctx = LocalContext(d, seed=seed, max_epochs=epochs, num_cpus=threads, echo=False,
                           tensorboard=False)
        t0, c0 = time.perf_counter(), time.process_time()
        train(dict(arch_config), ctx)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    curve = [round(float(r.get("map_50", 0.0)), 3) for r in ctx.results]
    return {"map_50": curve[-1] if curve else 0.0, "curve": curve, "seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "latency_ms": ctx.results[-1].get("latency_ms") if ctx.results else None}


def main(argv: list[str] | None = None) -> None:
    from spaces.library import get_space

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="spinenet49",
                    help="architecture space (spinenet49: SpineNet-49 block specs)")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--random", type=int, default=0, help="train N random architectures")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start", type=int, default=0,
                    help="with --random: train architectures start..N-1 only (the same "
                         "draws as a full run, e.g. to finish an interrupted one)")
    args = ap.parse_args(argv)
    space = get_space(args.space)
    base = {**SMALL_DETECTOR, "arch": args.space,
            **(NASFPN_EXTRA if args.space == "nasfpn" else {})}
    if args.random:
        rng = np.random.default_rng(args.seed)
        archs = [space.canonical(space.sample(rng)) for _ in range(args.random)]
    else:
        archs = [space.default()]
    scores = []
    print("| model | mAP@50 per epoch | final mAP@50 | wall s | CPU s |")
    print("|---|---|---|---|---|")
    for k, arch in list(enumerate(archs))[args.start:]:
        r = train_one({**base, **arch}, args.epochs, args.threads, args.seed)
        scores.append(r["map_50"])
        print(f"| {args.space} #{k} | {r['curve']} | {r['map_50']:.3f} | {r['seconds']} | "
              f"{r['cpu_seconds']} |", flush=True)
    if len(scores) > 1:
        print(f"spread (max - min) of mAP@50 over {len(scores)} architectures: "
              f"{max(scores) - min(scores):.3f} (min {min(scores):.3f}, median "
              f"{float(np.median(scores)):.3f}, max {max(scores):.3f})")


if __name__ == "__main__":
    main()
