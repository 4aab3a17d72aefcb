"""Tiny trainers for the orchestrator tests (no torch): a synthetic learning curve that
reports per epoch, checkpoints a small json file, and can fail once / sleep on demand."""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

try:  # Ray workers cannot import this test module by name: ship it by value
    import sys

    import ray.cloudpickle as _cp

    _cp.register_pickle_by_value(sys.modules[__name__])
except Exception:  # noqa: BLE001
    pass

# A small conditional space (native format dict) and a discrete one for grid/duplicates.
TOY_SPACE = {
    "name": "toy",
    "parameters": {
        "x": {"type": "float", "low": 0.0, "high": 1.0},
        "opt": {"type": "categorical", "choices": ["a", "b"]},
        "depth": {"type": "ordinal", "sequence": [1, 2, 3]},
        "momentum": {"type": "ordinal", "sequence": [0.8, 0.9]},
        "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    },
    "conditions": [{"child": "momentum", "parent": "opt", "equals": "b"}],
}
DISCRETE_SPACE = {
    "name": "disc",
    "parameters": {
        "a": {"type": "ordinal", "sequence": [1, 2, 3]},
        "b": {"type": "categorical", "choices": ["u", "v"]},
    },
}


def _trial_id(ctx) -> str:
    return str(getattr(ctx, "trial_id", None) or Path(ctx.trial_dir).name)


def _base(config: dict) -> float:
    x = float(config.get("x", 0.5))
    depth = float(config.get("depth", config.get("a", 1)))
    bonus = 0.05 if config.get("opt", config.get("b")) in ("b", "v") else 0.0
    return max(0.05, 0.9 - (x - 0.3) ** 2 + 0.02 * depth + bonus)


def curve(config: dict, ctx) -> None:
    """val_acc(epoch) = base(config) * (1 - 0.5**epoch). Checkpoints state.json every epoch
    (owner = trial id, epoch); on restore appends {"me", "from", "epoch"} to restores.jsonl."""
    me = _trial_id(ctx)
    start = 0
    if ctx.restore_dir is not None:
        state = json.loads((Path(ctx.restore_dir) / "state.json").read_text())
        start = int(state["epoch"])
        with open(Path(ctx.trial_dir) / "restores.jsonl", "a") as fh:
            fh.write(json.dumps({"me": me, "from": state["owner"], "epoch": start}) + "\n")
    sleep = float(config.get("sleep", 0.0))
    fail_at = config.get("fail_once_at")
    for epoch in range(start + 1, ctx.max_epochs + 1):
        if sleep:
            time.sleep(sleep)
        marker = Path(ctx.trial_dir) / "failed_once"
        if fail_at is not None and epoch == int(fail_at) and not marker.exists():
            marker.write_text("1")
            raise RuntimeError(f"synthetic failure at epoch {epoch}")
        if config.get("diverge_at") is not None and epoch == int(config["diverge_at"]):
            ctx.report({"epoch": epoch, "val_acc": 0.0, "val_loss": 1e9, "diverged": 1})
            return
        acc = _base(config) * (1 - 0.5 ** epoch)
        with tempfile.TemporaryDirectory() as d:
            Path(d, "state.json").write_text(json.dumps({"owner": me, "epoch": epoch}))
            ctx.report({"epoch": epoch, "val_acc": acc, "val_loss": 1 - acc,
                        "train_loss": 1.2 - acc, "diverged": 0, "pid": os.getpid()},
                       checkpoint_dir=d)


curve.supports_checkpoint = True


def no_checkpoint(config: dict, ctx) -> None:
    for epoch in range(1, ctx.max_epochs + 1):
        ctx.report({"epoch": epoch, "val_acc": _base(config) * (1 - math.exp(-epoch))})


no_checkpoint.supports_checkpoint = False


def node_probe(config: dict, ctx) -> None:
    """Reports ``max_epochs`` epochs plus the id of the Ray node the trial ran on (``node_id``),
    for the multi-node and Ray Jobs tests. ``sleep_s`` (default 0.2) keeps each epoch busy long
    enough for trials to spread over the nodes. Imports ray: test scaffolding, not a trainer."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    sleep_s = float(config.get("sleep_s", 0.2))
    x = float(config.get("x", 0.5))
    for epoch in range(1, ctx.max_epochs + 1):
        time.sleep(sleep_s)
        acc = min(1.0, 0.5 + 0.1 * epoch * (1.0 - abs(x - 0.5)))
        ctx.report({"epoch": epoch, "val_acc": acc, "val_loss": 1.0 - acc,
                    "train_loss": 1.0 - acc, "node_id": node_id})


def record_trainer(config, ctx):
    with open(config["record_to"], "a") as fh:
        fh.write(json.dumps({"dataset": config.get("dataset"), "max_epochs": ctx.max_epochs,
                             "num_cpus": ctx.num_cpus, "trial_dir": str(ctx.trial_dir),
                             "seed": ctx.seed, "keys": sorted(config), "opt": config["opt"]})
                 + "\n")
    ctx.report({"epoch": 1, "val_acc": 0.5})
