"""Record a NAS learning-curve table (MnasNet on digits) for the search-quality harness.

    python bench/record_nas_curves.py --budget-s 1800       # 2 workers, 30 minutes
    python bench/record_nas_curves.py --workers 1 --budget-s 60 --out /tmp/nas.json.gz  # smoke

The task (:data:`TASK`): the ``nas`` trainer's MnasNet (``space: mnasnet``, ``width_scale``
0.25) on sklearn digits at 16 px, 30 % of the training split, 8 epochs. Blocks 1-3 are searched
(op, kernel, expansion: 8 choices each, 512 architectures); blocks 0, 4, 5, 6, every block's
repeats (the smallest of its range), width (1.0) and squeeze-excitation (off) are fixed
(``fixed`` in the table, applied by :class:`trainers.replay.ReplayTable`). ``--workers``
processes (one CPU thread each) draw distinct architectures with the space's seeded sampler
(``space.default()`` first, the harness's budget unit) and train each in-process until the
wall-clock budget is spent; one JSON row per architecture (configuration, per-epoch val_acc and
seconds, cost, error) goes to ``bench/data/nas_mnasnet_digits.json.gz`` in the format of
``bench/record_curves.py``, so ``bench/search_quality.py``'s simulator replays it.
"""
from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.record_curves import _git_commit, _Recorder, _versions

__all__ = ["TASK", "main", "nas_fixed", "record"]

SEARCHED_BLOCKS = (1, 2, 3)
TASK: dict[str, Any] = {
    "task": "nas_mnasnet_digits",
    "space": "mnasnet",
    "trainer": "nas",
    "data": {"arch": "mnasnet", "dataset": "digits", "image_size": 16, "width_scale": 0.25,
             "data_fraction": 0.3, "val_fraction": 0.2, "batch_size": 32, "device": "cpu",
             "num_workers": 0, "checkpoint_every": 0, "latency_warmup": 0,
             "latency_repeats": 1},
    "max_epochs": 8,
    "about": "MnasNet (nas trainer, width_scale 0.25) on sklearn digits, 16 px, 30 % of the "
             "training split, 360 validation images, 8 epochs; blocks 1-3 searched (op, kernel, "
             "expansion), the rest fixed",
}


def nas_fixed() -> dict[str, Any]:
    """The fixed values: every block's repeats (smallest), width 1.0 and se 0; blocks outside
    :data:`SEARCHED_BLOCKS` also fix op, kernel and expansion to the space's defaults."""
    from spaces.library.registry import SPACES

    space = SPACES.create("mnasnet")
    fixed: dict[str, Any] = {}
    n_blocks = len({n.split(".")[1] for n in space.names})
    for i in range(n_blocks):
        fixed[f"blocks.{i}.repeats"] = space[f"blocks.{i}.repeats"].sequence[0]
        fixed[f"blocks.{i}.width"] = 1.0
        fixed[f"blocks.{i}.se"] = 0.0
        if i not in SEARCHED_BLOCKS:
            for field in ("op", "kernel", "expansion"):
                fixed[f"blocks.{i}.{field}"] = space[f"blocks.{i}.{field}"].default
    return fixed


def _train_one(cfg: dict, trainer: Any) -> dict:
    from trainers.api import LocalContext

    ctx = LocalContext(tempfile.mkdtemp(prefix="nas_rec_"), max_epochs=TASK["max_epochs"],
                       echo=False, tensorboard=False, num_cpus=1)
    rec, start, error = _Recorder(ctx), time.perf_counter(), None
    try:
        trainer({**TASK["data"], **cfg}, rec)
    except Exception as exc:  # noqa: BLE001 - recorded with its cost
        error = f"{type(exc).__name__}: {exc}"[:400]
    return {"config": cfg, "val_acc": [float(r["val_acc"]) for r in rec.rows],
            "epoch_s": [round(float(r.get("epoch_time_s", 0.0)), 4) for r in rec.rows],
            "diverged": int(any(r.get("diverged") for r in rec.rows)),
            "cost_s": round(time.perf_counter() - start, 4), "error": error}


def _worker(index: int, workers: int, seed: int, until: float, lines: str) -> None:
    """Train architectures ``index, index + workers, ...`` of one seeded draw order."""
    import numpy as np
    import torch

    from spaces.library.registry import SPACES
    from trainers import get_trainer

    torch.set_num_threads(1)
    space = SPACES.create("mnasnet").with_fixed(nas_fixed())
    rng, order, seen = np.random.default_rng(seed), [space.canonical(space.default())], set()
    trainer = get_trainer(TASK["trainer"])
    k = 0
    while time.time() < until:
        while len(order) <= k:
            cfg = space.canonical(space.sample(rng))
            if space.config_id(cfg) not in seen:
                seen.add(space.config_id(cfg))
                order.append(cfg)
        if k % workers == index:
            row = _train_one({n: order[k][n] for n in space.names if n in order[k]}, trainer)
            if time.time() < until:
                with open(lines, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
        k += 1


def record(out: Path, *, workers: int = 2, budget_s: float = 1200.0, seed: int = 0) -> Path:
    """Record for ``budget_s`` wall-clock seconds with ``workers`` processes; returns ``out``."""
    lines = Path(tempfile.mkdtemp(prefix="nas_lines_")) / "rows.jsonl"
    lines.touch()
    started = time.time()
    until = started + budget_s
    procs = [mp.get_context("spawn").Process(target=_worker, args=(i, workers, seed, until,
                                                                    str(lines)))
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    rows = [json.loads(x) for x in lines.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["error"] or len(r["val_acc"]) == TASK["max_epochs"]]
    table = {
        "task": TASK["task"], "about": TASK["about"], "space": TASK["space"],
        "fixed": nas_fixed(), "data": TASK["data"], "trainer": TASK["trainer"],
        "max_epochs": TASK["max_epochs"], "metric": "val_acc", "mode": "max",
        "command": "python bench/record_nas_curves.py " + " ".join(sys.argv[1:]),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1), "concurrent": workers,
        "versions": _versions(), "git_commit": _git_commit(),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs, shared)", "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget-s", type=float, default=1200.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "data" / f"{TASK['task']}.json.gz")
    args = ap.parse_args(argv)
    path = record(args.out, workers=args.workers, budget_s=args.budget_s, seed=args.seed)
    import numpy as np

    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = json.load(fh)["rows"]
    finals = [r["val_acc"][-1] for r in rows if r["val_acc"]]
    print(f"{path}: {len(rows)} architectures, {sum(bool(r['error']) for r in rows)} failed, "
          f"final val_acc best {max(finals):.3f} median {np.median(finals):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
