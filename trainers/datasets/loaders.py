"""DataLoaders for the datasets of :func:`trainers.data.build_datasets`."""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .config import DataConfig

__all__ = ["build_loaders"]


def _seed_worker(worker_id: int) -> None:
    """Seed numpy and random in a DataLoader worker from torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_loaders(
    train_ds: Dataset,
    val_ds: Dataset,
    cfg: DataConfig,
    device: torch.device | str | None = None,
    seed: int | None = None,
) -> tuple[DataLoader, DataLoader]:
    """``(train_loader, val_loader)`` for the datasets of :func:`build_datasets`.

    Training: shuffled with a ``torch.Generator`` seeded by ``seed`` (default ``cfg.seed``; pass
    the trial seed to vary the order between trials), ``drop_last`` when the training set is larger
    than one batch (so a batch of 1 never reaches BatchNorm). Validation: in order, batch size
    ``cfg.resolved_eval_batch_size``. Both: ``cfg.num_workers`` workers (persistent when > 0),
    ``pin_memory`` when ``device`` is CUDA.
    """
    dev = torch.device(device) if device is not None else torch.device("cpu")
    pin = dev.type == "cuda"
    workers = int(cfg.num_workers)
    gen = torch.Generator()
    gen.manual_seed(int(cfg.seed if seed is None else seed))
    common: dict[str, Any] = dict(num_workers=workers, pin_memory=pin)
    if workers > 0:
        common.update(persistent_workers=True, worker_init_fn=_seed_worker)
    train_loader = DataLoader(
        train_ds, batch_size=cfg.batch_size, shuffle=True, generator=gen,
        drop_last=len(train_ds) > cfg.batch_size, **common,
    )
    val_loader = DataLoader(
        val_ds, batch_size=cfg.resolved_eval_batch_size, shuffle=False, **common
    )
    return train_loader, val_loader
