"""Every Quick-Tune seed model builds and trains at 64 px and at its native size.

For each of the 24 ``quicktune`` seed models and each size: the model is built with pretrained
weights off (a random 7-class model is saved as a local checkpoint and loaded as the
"pretrained" source, so Co-Tuning has a source head), fine-tuned on ``digits-target`` (5
classes) with L2-SP, DELTA, BSS and Co-Tuning on, batch 2: one training step (forward, backward,
optimiser step). Prints one table row per (model, size) with the size the model was built for,
how (:func:`trainers.model_fit.fit_model`), the loss and the seconds it took.

    python bench/seed_models.py [--sizes 64,native] [--models a,b] [--out table.json]
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import torch

__all__ = ["run_one"]


def run_one(model: str, size: int | None, workdir: Path) -> dict:
    """One training step of ``model`` at ``size`` (None: native) with every regulariser on."""
    import timm
    from safetensors.torch import save_file

    from trainers.api import LocalContext
    from trainers.finetune import FineTuner
    from trainers.model_fit import fit_model

    start = time.perf_counter()
    fit = fit_model(model, size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = timm.create_model(model, pretrained=False, num_classes=7, **fit.create_kwargs)
    ckpt = workdir / f"{model}.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(ckpt))
    del source
    cfg = {"model": model, "image_size": size, "pretrained": str(ckpt),
           "dataset": "digits-target", "data_fraction": 0.001, "batch-size": 2,
           "eval_batch_size": 2, "sp-reg": 1e-3, "delta-reg": 1e-3, "bss-reg": 1e-3,
           "cotuning-reg": 1.0, "drop": 0.1, "train_crop_scale": 0.5}
    ctx = LocalContext(workdir / model, seed=0, max_epochs=1, num_cpus=2, echo=False,
                       tensorboard=False)
    ft = FineTuner(cfg, ctx)
    x, y = next(iter(ft.train_loader))
    _, parts = ft.compute_loss(x, y)
    loss = ft.train_step(x, y)
    ckpt.unlink()
    return {"model": model, "requested": size or "native", "input_size": fit.input_size,
            "how": fit.how, "kwargs": dict(fit.create_kwargs), "loss": float(loss),
            "parts": sorted(parts), "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    from spaces.library.quicktune import QUICKTUNE_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,native")
    parser.add_argument("--models", default=",".join(QUICKTUNE_MODELS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sizes = [None if s == "native" else int(s) for s in args.sizes.split(",")]
    torch.set_num_threads(2)
    rows = []
    print("| model | requested | built at | how | loss | parts | s |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for size in sizes:
                try:
                    row = run_one(model, size, Path(tmp))
                except Exception as exc:  # noqa: BLE001 - a failing model is a table row
                    row = {"model": model, "requested": size or "native",
                           "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                rows.append(row)
                if "error" in row:
                    print(f"| {model} | {row['requested']} | ERROR | {row['error']} | | | |")
                else:
                    print(f"| {model} | {row['requested']} | {row['input_size']} | {row['how']} "
                          f"{row['kwargs'] or ''} | {row['loss']:.3f} | "
                          f"{'+'.join(row['parts'])} | {row['seconds']} |", flush=True)
                if args.out:
                    Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
