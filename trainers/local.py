"""Run a trainer in-process: what ``archtune train --config cfg.yaml`` calls."""
from __future__ import annotations

import os
from pathlib import Path

from . import get_trainer
from .api import LocalContext

__all__ = ["run_local"]


def run_local(
    config: dict,
    run_dir: str | os.PathLike,
    max_epochs: int,
    seed: int = 0,
    trainer: str = "finetune",
    restore_dir: str | os.PathLike | None = None,
    num_cpus: int | None = None,
    echo: bool = True,
) -> list[dict]:
    """Train once with ``config`` under ``run_dir`` and return the per-epoch metric dicts.

    ``run_dir`` receives ``metrics.csv``, ``metrics.jsonl``, TensorBoard scalars and
    ``checkpoints/epoch_XXXX``; pass one of those as ``restore_dir`` to resume.

    Example:
        >>> run_local({"model": "resnet10t", "image_size": 32}, "runs/one", max_epochs=3)
    """
    fn = get_trainer(trainer)
    ctx = LocalContext(Path(run_dir), seed=seed, max_epochs=max_epochs, restore_dir=restore_dir,
                       num_cpus=num_cpus, echo=echo)
    try:
        fn(dict(config), ctx)
    finally:
        ctx.close()
    return ctx.results
