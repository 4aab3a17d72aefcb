"""Record a tabular learning-curve benchmark with archtune itself.

    python bench/record_curves.py digits            # (a) digits from scratch
    python bench/record_curves.py digits_transfer   # (b) digits-target from digits-source weights
    python bench/record_curves.py photo_crops       # (c) ImageFolder of scikit-image photo crops
    python bench/record_curves.py digits --configs 8 --out /tmp/small.json.gz   # a small table
    python bench/record_curves.py digits --append --configs 30 --seed 1  # top an existing table up

Each task runs random search + FIFO over ``quicktune_cpu`` (model included) through
``orchestrator.run(Experiment(...))``, every configuration trained to the task's full length.
A wrapping trainer (:func:`recording_trainer`) appends one JSON line per trial: the
configuration, its per-epoch validation accuracy and wall time, and, for a failure, the error and
the seconds it cost. The table (``bench/data/TASK.json.gz``) also holds the command, the package
versions and the git commit it was recorded with. :mod:`trainers.replay` serves it back.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["TASKS", "recording_trainer", "record", "append", "load_table", "main"]

DATA_DIR = ROOT / "bench" / "data"
WORK_DIR = Path(os.environ.get("ARCHTUNE_BENCH_WORK", "/tmp/archtune_bench"))

#: skimage.data photos (bundled with scikit-image, no download) used as classes of task (c)
PHOTOS = ("brick", "grass", "gravel", "coins", "moon", "page", "hubble_deep_field",
          "immunohistochemistry", "retina", "coffee")

#: digits are not flip-invariant, and timm's 8 % crops of an upscaled 8x8 digit rarely show one
DIGIT_VIEWS = {"train_crop_scale": 1.0, "train_hflip": 0.0}

#: task -> data settings, fixed parameters, epochs and the recording's wall-clock budget
#: (``budget_s``: recording stops there even before ``--configs`` configurations). Small images
#: and data keep one epoch around a second on a shared CPU core.
TASKS: dict[str, dict[str, Any]] = {
    "digits": {
        "data": {"dataset": "digits", "image_size": 16, "data_fraction": 0.1,
                 "val_fraction": 0.1, "checkpoint_every": 0, **DIGIT_VIEWS},
        "fixed": {"cotuning-reg": 0.0, "amp": False},
        "max_epochs": 12,
        "budget_s": 2700,
        "about": "sklearn digits from scratch, 16 px, 10 % of the training split (~160 images), "
                 "180 validation images, whole-image training views without flips",
    },
    "digits_transfer": {
        "data": {"dataset": "digits-target", "image_size": 16, "data_fraction": 0.05,
                 "val_fraction": 0.2, "checkpoint_every": 0, **DIGIT_VIEWS},
        "fixed": {"amp": False},
        "max_epochs": 12,
        "source": {"dataset": "digits-source", "image_size": 16, "epochs": 4, **DIGIT_VIEWS},
        "budget_s": 1800,
        "about": "digits 5-9 fine-tuned from a per-model digits 0-4 checkpoint (4 epochs, AdamW "
                 "1e-3), 16 px, 5 % of the training split (~36 images), 180 validation images, "
                 "whole-image training views without flips",
    },
    "photo_crops": {
        "data": {"dataset": "imagefolder", "image_size": 16, "checkpoint_every": 0,
                 "train_crop_scale": 0.5, "train_hflip": 0.5},
        "fixed": {"cotuning-reg": 0.0, "amp": False},
        "max_epochs": 12,
        "budget_s": 2700,
        "about": f"ImageFolder of grey 16 px crops of {len(PHOTOS)} scikit-image photos "
                 "(20 train / 15 val per class, train and val from disjoint parts of each photo), "
                 "training crops of at least half the image, flipped half the time",
    },
}


# ------------------------------------------------------------------------------ the trainer
class _Recorder:
    """A TrialContext proxy that keeps every report of the trial it wraps."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self.rows: list[dict] = []

    def report(self, metrics: dict, checkpoint_dir: Any = None) -> None:
        self.rows.append(dict(metrics))
        self._ctx.report(metrics, checkpoint_dir)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)


def recording_trainer(config: dict, ctx: Any) -> None:
    """The ``finetune`` trainer, recording its curve to the file named by ``_record_to``.

    ``_pretrained_dir`` (optional) names a folder of ``MODEL.pt`` source checkpoints: the
    trial's ``pretrained`` becomes the one of its model. Errors are recorded, then re-raised.
    """
    from trainers import get_trainer

    cfg = dict(config)
    out = Path(cfg.pop("_record_to"))
    params = json.loads(cfg.pop("_params"))
    src = cfg.pop("_pretrained_dir", None)
    if src:
        cfg["pretrained"] = str(Path(src) / f"{cfg['model']}.pt")
    rec, start, error = _Recorder(ctx), time.perf_counter(), None
    try:
        get_trainer("finetune")(cfg, rec)
    except Exception as exc:  # noqa: BLE001 - recorded with its cost, then re-raised
        error = f"{type(exc).__name__}: {exc}"[:400]
        raise
    finally:
        row = {
            "config": {k: cfg[k] for k in params if k in cfg},
            "val_acc": [float(r["val_acc"]) for r in rec.rows],
            "epoch_s": [round(float(r.get("epoch_time_s", 0.0)), 4) for r in rec.rows],
            "diverged": int(any(r.get("diverged") for r in rec.rows)),
            "cost_s": round(time.perf_counter() - start, 4),
            "error": error,
        }
        with open(out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


# ------------------------------------------------------------------------------ task set-up
def _prepare_photo_crops(root: Path, size: int = 24, per_train: int = 20,
                         per_val: int = 15, seed: int = 0) -> Path:
    """``root/train/CLASS/*.png`` and ``root/val/...``: grey crops of the bundled photos;
    train crops come from the left 60 % of each photo, validation crops from the rest."""
    import numpy as np
    import skimage.data
    from PIL import Image

    if (root / "val").is_dir():
        return root
    rng = np.random.default_rng(seed)
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 3:
            img = img[..., :3].mean(axis=-1)
        img = img.astype(np.float32)
        img = (255 * (img - img.min()) / max(1e-6, float(img.max() - img.min()))).astype(np.uint8)
        pil = Image.fromarray(img)
        scale = 160 / min(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))))
        arr = np.asarray(pil)
        cut = int(arr.shape[1] * 0.6)
        for split, n, (lo, hi) in (("train", per_train, (0, cut)),
                                   ("val", per_val, (cut, arr.shape[1]))):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                side = int(rng.integers(size, 2 * size + 1))
                x = int(rng.integers(lo, max(lo + 1, hi - side)))
                y = int(rng.integers(0, max(1, arr.shape[0] - side)))
                crop = Image.fromarray(arr[y:y + side, x:x + side]).resize((size, size))
                crop.save(folder / f"{i:03d}.png")
    return root


def _prepare_sources(folder: Path, models: list[str], source: dict) -> Path:
    """One digits-source checkpoint per model (``MODEL.pt``), trained with AdamW 1e-3."""
    import tempfile

    import torch

    from trainers.api import LocalContext
    from trainers.finetune import FineTuner

    folder.mkdir(parents=True, exist_ok=True)
    for model in models:
        path = folder / f"{model}.pt"
        if path.is_file():
            continue
        cfg = {"model": model, **{k: v for k, v in source.items() if k != "epochs"},
               "opt": "adamw", "lr": 1e-3, "batch-size": 32, "checkpoint_every": 0}
        ctx = LocalContext(tempfile.mkdtemp(prefix="src_"), max_epochs=source["epochs"],
                           echo=False, tensorboard=False, num_cpus=1)
        try:
            tuner = FineTuner(cfg, ctx)
            tuner.fit()
        except Exception as exc:  # noqa: BLE001 - a model that cannot run has no source
            print(f"source {model}: {type(exc).__name__}: {exc}", flush=True)
            continue
        torch.save(tuner.model.state_dict(), path)
        print(f"source {model}: val_acc {ctx.results[-1]['val_acc']:.3f}", flush=True)
    return folder


def _task_data(task: str) -> tuple[dict, dict]:
    """(data settings as the trainer sees them, extra keys for the recording trainer)."""
    spec = TASKS[task]
    data, extra = dict(spec["data"]), {}
    if task == "photo_crops":
        data["data_dir"] = str(_prepare_photo_crops(WORK_DIR / "photo_crops"))
    if "source" in spec:
        from spaces.library.quicktune import CPU_MODELS

        extra["_pretrained_dir"] = str(_prepare_sources(WORK_DIR / f"{task}_sources",
                                                        list(CPU_MODELS), spec["source"]))
    return data, extra


# ------------------------------------------------------------------------------ recording
def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("torch", "timm", "torchvision", "ray", "optuna", "numpy", "scikit-learn",
                "scikit-image"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _git_commit() -> str:
    if os.environ.get("ARCHTUNE_GIT_COMMIT"):  # recorded from a snapshot without .git
        return os.environ["ARCHTUNE_GIT_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:  # noqa: BLE001
        return "unknown"


def record(task: str, *, configs: int = 300, seed: int = 0, out: Path | None = None,
           concurrent: int = 3, budget_s: float | None = None) -> Path:
    """Record up to ``configs`` random configurations of ``task`` (``concurrent`` at a time,
    each on a 1/``concurrent`` share of the machine's CPUs, for at most ``budget_s`` seconds,
    default the task's); returns the table's path."""
    from orchestrator import run
    from orchestrator.spec import Experiment, ResourcesSpec, SearcherSpec, SchedulerSpec
    from spaces.library.registry import SPACES

    spec = TASKS[task]
    out = out or DATA_DIR / f"{task}.json.gz"
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    lines = WORK_DIR / f"{task}_{seed}_{int(time.time())}.jsonl"
    data, extra = _task_data(task)
    params = SPACES.create("quicktune_cpu").names
    # Ray starts its workers at nice 15 by default; on a machine shared with other jobs the
    # recorded epoch times would then measure the others' load more than the trial itself
    os.environ.setdefault("RAY_worker_niceness", "0")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    exp = Experiment(
        name=f"record_{task}_{lines.stem}", space="quicktune_cpu", fixed=dict(spec["fixed"]),
        trainer="bench.record_curves:recording_trainer",
        data={**data, **extra, "_record_to": str(lines), "_params": json.dumps(list(params))},
        searcher=SearcherSpec(type="random", seed=seed), scheduler=SchedulerSpec(type="fifo"),
        num_samples=configs, max_concurrent=concurrent,
        resources=ResourcesSpec(cpu=round((os.cpu_count() or 1) / concurrent, 3)),
        max_epochs=spec["max_epochs"], storage=str(WORK_DIR / "runs"), max_failures=0,
        time_budget_s=float(budget_s or spec.get("budget_s") or 0) or None, seed=seed)
    started = time.time()
    run(exp)
    rows = [json.loads(x) for x in lines.read_text().splitlines() if x.strip()]
    # trials cut by the wall-clock budget are incomplete, not recorded curves
    rows = [r for r in rows if r["error"] or r["diverged"] or len(r["val_acc"]) == spec["max_epochs"]]
    table = {
        "task": task, "about": spec["about"], "space": "quicktune_cpu",
        "fixed": spec["fixed"], "data": data, "max_epochs": spec["max_epochs"],
        "metric": "val_acc", "mode": "max",
        "source": spec.get("source"),
        "command": "python bench/record_curves.py " + " ".join(sys.argv[1:]),
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "wall_s": round(time.time() - started, 1), "concurrent": concurrent,
        "versions": _versions(), "git_commit": _git_commit(),
        "host": f"{platform.node()} ({os.cpu_count()} CPUs, shared)",
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return out


def record_local(task: str, lines: Path, *, seed: int, until: float) -> int:
    """A helper worker beside a running :func:`record`: draws configurations with the space's
    own seeded sampler (what archtune's ``random`` searcher does, another seed) and trains them
    in this process until the epoch time ``until``, appending rows (``origin: local``) to the
    recording's ``lines`` file, so the machine's second core is used while Ray's trial actors
    start. Returns the number of configurations trained."""
    import tempfile

    import numpy as np
    import torch

    from spaces.library.registry import SPACES
    from trainers.api import LocalContext

    torch.set_num_threads(1)
    spec = TASKS[task]
    space = SPACES.create("quicktune_cpu").with_fixed(spec["fixed"])
    data, extra = _task_data(task)
    rng, n = np.random.default_rng(seed), 0
    scratch = lines.with_suffix(f".local{seed}")
    while time.time() < until:
        cfg = space.canonical(space.sample(rng))
        ctx = LocalContext(tempfile.mkdtemp(prefix="local_"), max_epochs=spec["max_epochs"],
                           echo=False, tensorboard=False, num_cpus=1)
        try:
            recording_trainer({**data, **extra, **cfg, "_record_to": str(scratch),
                               "_params": json.dumps(list(space.names))}, ctx)
        except Exception:  # noqa: BLE001 - recorded as a failure row
            pass
        row = json.loads(scratch.read_text().splitlines()[-1])
        if time.time() < until:
            with open(lines, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({**row, "origin": "local"}) + "\n")
            n += 1
    return n


def load_table(path: str | os.PathLike) -> dict:
    """A recorded table (``.json.gz``) as a dict (see :func:`record`)."""
    from trainers.replay import load_table as _load

    return _load(path)


def recipe_configs(space: Any) -> list[dict]:
    """The configurations every table must hold exactly (the benchmark's fixed baselines and
    the portfolio's recipes): the default recipe on each model, and ``space.default()``."""
    from orchestrator.quick.portfolio import family_recipes

    out = []
    for cfg in family_recipes(space) + [space.default()]:
        base = dict(space.default())
        base.update({k: v for k, v in cfg.items() if k in space and space[k].contains(v)})
        out.append(space.canonical(base))
    return out


def record_recipes(task: str, table_path: Path) -> Path:
    """Train :func:`recipe_configs` of ``task`` in this process (one CPU thread, no Ray) and add
    them to the table at ``table_path`` as rows with ``origin: recipe``."""
    import tempfile

    import torch

    from spaces.library.registry import SPACES
    from trainers.api import LocalContext

    torch.set_num_threads(1)
    table = load_table(table_path)
    space = SPACES.create("quicktune_cpu").with_fixed(table["fixed"])
    data, extra = _task_data(task)
    lines = WORK_DIR / f"{task}_recipes_{int(time.time())}.jsonl"
    have = {json.dumps(r["config"], sort_keys=True) for r in table["rows"]}
    for cfg in recipe_configs(space):
        if json.dumps(cfg, sort_keys=True, default=str) in have:
            continue
        ctx = LocalContext(tempfile.mkdtemp(prefix="recipe_"), max_epochs=table["max_epochs"],
                           echo=False, tensorboard=False, num_cpus=1)
        full = {**data, **extra, **cfg, "_record_to": str(lines),
                "_params": json.dumps(list(space.names))}
        try:
            recording_trainer(full, ctx)
        except Exception as exc:  # noqa: BLE001 - recorded as a failure row
            print(f"recipe {cfg.get('model')}: {type(exc).__name__}: {exc}", flush=True)
    rows = [dict(json.loads(x), origin="recipe") for x in lines.read_text().splitlines()]
    table["rows"].extend(rows)
    table["recipes_recorded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with gzip.open(table_path, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return table_path


def append(task: str, table_path: Path, *, configs: int, seed: int, concurrent: int = 3,
           budget_s: float | None = None) -> Path:
    """Record ``configs`` more random configurations of ``task`` (with another ``seed`` than
    the table's earlier recordings) and add those whose ``config_id`` the table lacks, with
    ``origin: append``; the table's ``appended`` list keeps each top-up's command and versions."""
    from spaces.library.registry import SPACES

    table = load_table(table_path)
    fresh = load_table(record(task, configs=configs, seed=seed, concurrent=concurrent,
                              budget_s=budget_s,
                              out=WORK_DIR / f"{task}_append_{seed}.json.gz"))
    space = SPACES.create(table.get("space", "quicktune_cpu")).with_fixed(table["fixed"])
    have = {space.config_id(r["config"]) for r in table["rows"]}
    added = []
    for row in fresh["rows"]:
        cid = space.config_id(row["config"])
        if cid not in have:
            have.add(cid)
            added.append({**row, "origin": "append"})
    table["rows"].extend(added)
    table.setdefault("appended", []).append(
        {k: fresh[k] for k in ("command", "recorded_at", "wall_s", "concurrent", "versions",
                               "git_commit", "host")} | {"rows": len(added)})
    with gzip.open(table_path, "wt", encoding="utf-8") as fh:
        json.dump(table, fh)
    return table_path


def _summary(table: dict) -> str:
    import numpy as np

    finals = np.array([r["val_acc"][-1] for r in table["rows"] if r["val_acc"]])
    failed = sum(1 for r in table["rows"] if r["error"])
    return (f"{table['task']}: {len(table['rows'])} configs, {failed} failed, "
            f"final val_acc best {finals.max():.3f} p90 {np.quantile(finals, .9):.3f} "
            f"median {np.median(finals):.3f}, {table['wall_s']:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("task", choices=sorted(TASKS))
    ap.add_argument("--configs", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrent", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-clock limit of the recording (default: the task's budget_s)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--local-into", type=Path, default=None,
                    help="run a helper worker appending to this recording's lines file")
    ap.add_argument("--until", type=float, default=None, help="helper worker's end (epoch s)")
    ap.add_argument("--recipes", action="store_true",
                    help="add the recipe configurations to an existing table (no Ray)")
    ap.add_argument("--append", action="store_true",
                    help="record --configs more configurations (use a new --seed) into the "
                         "existing table")
    args = ap.parse_args(argv)
    if args.local_into:
        print(record_local(args.task, args.local_into, seed=args.seed, until=args.until))
        return 0
    if args.recipes:
        path = record_recipes(args.task, args.out or DATA_DIR / f"{args.task}.json.gz")
        print(_summary(load_table(path)))
        return 0
    if args.append:
        path = append(args.task, args.out or DATA_DIR / f"{args.task}.json.gz",
                      configs=args.configs, seed=args.seed, concurrent=args.concurrent,
                      budget_s=args.budget_s)
        print(_summary(load_table(path)))
        return 0
    try:
        path = record(args.task, configs=args.configs, seed=args.seed, out=args.out,
                      concurrent=args.concurrent, budget_s=args.budget_s)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return 1
    print(_summary(load_table(path)))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
