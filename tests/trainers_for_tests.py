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
# One trial per fault kind (grid): tests/test_faults.py and bench/faults.py.
FAULT_SPACE = {
    "name": "faults",
    "parameters": {"fault": {"type": "categorical",
                             "choices": ["none", "fail_once", "nan", "oom"]}},
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
    (owner = trial id, epoch); on restore appends {"me", "from", "epoch"} to restores.jsonl.
    ``fail_once_at``: raise once at that epoch (``truncate_on_fail``: first cut the newest
    checkpoint's file short); ``diverge_at``: report a diverged result and stop; ``nan_at``:
    NaN metrics from that epoch on; ``oom_at``: an allocation the machine cannot hold;
    ``fault`` (``nan``/``oom``/``fail_once``/``none``): that fault at epoch 2."""
    me = _trial_id(ctx)
    fault = config.get("fault", "none")  # a searched parameter: one fault per trial
    if fault != "none":
        config = {**config, f"{fault}_at": 2}
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
            if config.get("truncate_on_fail"):  # the disk loses the end of the newest file
                newest = max(Path(ctx.trial_dir).glob("checkpoint_*"))
                state = newest / "state.json"
                state.write_bytes(state.read_bytes()[:5])
            raise RuntimeError(f"synthetic failure at epoch {epoch}")
        if config.get("diverge_at") is not None and epoch == int(config["diverge_at"]):
            ctx.report({"epoch": epoch, "val_acc": 0.0, "val_loss": 1e9, "diverged": 1})
            return
        if config.get("oom_at") is not None and epoch == int(config["oom_at"]):
            import numpy as np

            np.ones(2 ** 42, dtype=np.uint8)  # 4 TiB: the allocator refuses (MemoryError)
        acc = _base(config) * (1 - 0.5 ** epoch)
        if config.get("nan_at") is not None and epoch >= int(config["nan_at"]):
            acc = float("nan")  # the loss went NaN and stays there
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
    enough for trials to spread over the nodes; ``record_to`` (optional) gets one JSON line per
    epoch with the trial folder, the time and the node. Imports ray: test scaffolding."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    sleep_s = float(config.get("sleep_s", 0.2))
    x = float(config.get("x", 0.5))
    for epoch in range(1, ctx.max_epochs + 1):
        time.sleep(sleep_s)
        acc = min(1.0, 0.5 + 0.1 * epoch * (1.0 - abs(x - 0.5)))
        ctx.report({"epoch": epoch, "val_acc": acc, "val_loss": 1.0 - acc,
                    "train_loss": 1.0 - acc, "node_id": node_id})
        if config.get("record_to"):
            with open(config["record_to"], "a") as fh:
                fh.write(json.dumps({"trial": Path(ctx.trial_dir).name, "epoch": epoch,
                                     "t": time.time(), "node_id": node_id}) + "\n")


def record_trainer(config, ctx):
    with open(config["record_to"], "a") as fh:
        fh.write(json.dumps({"dataset": config.get("dataset"), "max_epochs": ctx.max_epochs,
                             "num_cpus": ctx.num_cpus, "trial_dir": str(ctx.trial_dir),
                             "seed": ctx.seed, "keys": sorted(config), "opt": config["opt"]})
                 + "\n")
    ctx.report({"epoch": 1, "val_acc": 0.5})


def curve_recording(config, ctx):
    """:func:`curve`, first appending the config it was given (space keys) to ``record_to``."""
    keys = ("x", "lr", "depth", "opt", "momentum")
    with open(config["record_to"], "a") as fh:
        fh.write(json.dumps({k: config[k] for k in keys if k in config}) + "\n")
    curve(config, ctx)


curve_recording.supports_checkpoint = True


# A toy architecture space (24 architectures) for the NAS pipeline test.
NAS_TOY_SPACE = {
    "name": "toy_arch",
    "parameters": {
        "depth": {"type": "ordinal", "sequence": [1, 2, 3, 4]},
        "width": {"type": "ordinal", "sequence": [1, 2, 3]},
        "op": {"type": "categorical", "choices": ["a", "b"]},
    },
}


def nas_like(config, ctx):
    """A fast NAS-like trainer over NAS_TOY_SPACE whose score depends deterministically on the
    architecture, on the proxy settings and on the augmentation params:

    ``val_acc(e) = quality(arch) * (1 - 0.5**e) + (1 - fidelity) * noise(arch)
    + 0.5**e * early(arch) + aug``, with ``fidelity = data_fraction * width_scale`` (cheap
    proxies scramble the ranking) and ``early`` favouring shallow nets in the first epochs (a
    proxy's tau rises with the step). Appends each call to ``record_to`` when given."""
    import hashlib

    depth, width, op = int(config["depth"]), int(config["width"]), str(config["op"])
    quality = 0.4 + 0.1 * depth + 0.03 * width + (0.012 if op == "b" else 0.0)
    fidelity = float(config.get("data_fraction", 1.0)) * float(config.get("width_scale", 1.0))
    h = hashlib.sha1(f"{depth}-{width}-{op}".encode()).hexdigest()
    noise = (int(h[:8], 16) / 0xFFFFFFFF - 0.5) * 0.25
    early = 0.12 * (4 - depth)
    aug = 0.0
    if "num_ops" in config:
        aug = 0.002 * int(config["magnitude"]) - 0.004 * abs(int(config["num_ops"]) - 2)
    if config.get("record_to"):
        keys = ("depth", "width", "op", "data_fraction", "width_scale", "image_size",
                "num_ops", "magnitude")
        with open(config["record_to"], "a") as fh:
            fh.write(json.dumps({"max_epochs": ctx.max_epochs, "trial_dir": str(ctx.trial_dir),
                                 **{k: config[k] for k in keys if k in config}}) + "\n")
    for epoch in range(1, ctx.max_epochs + 1):
        time.sleep(float(config.get("sleep", 0.0)))  # bench/faults.py: time to be killed in
        acc = (quality * (1 - 0.5 ** epoch) + (1 - fidelity) * noise
               + 0.5 ** epoch * early + aug)
        ctx.report({"epoch": epoch, "val_acc": acc, "val_loss": 1.0 - acc})
