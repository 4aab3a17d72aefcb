"""The image-folder family (``imagefolder``): class folders read with torchvision's
``ImageFolder``, and the split rules shared with the torchvision family."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from trainers.errors import TrainerError

from .base import ImageDataset, Transform
from .config import DataConfig
from .splits import holdout, stratified_subset

__all__ = ["build_imagefolder", "split_base", "targets_of"]


def targets_of(ds: Dataset) -> list[int]:
    for attr in ("targets", "labels", "_labels", "_targets"):
        value = getattr(ds, attr, None)
        if value is not None:
            return [int(t) for t in (value.tolist() if hasattr(value, "tolist") else value)]
    samples = getattr(ds, "_samples", None) or getattr(ds, "samples", None)
    if samples is not None:
        return [int(s[1]) for s in samples]
    return [int(ds[i][1]) for i in range(len(ds))]  # generic and slow, last resort


def split_base(cfg: DataConfig, base: Dataset, targets: list[int], eval_base: Dataset | None,
               eval_targets: list[int] | None, train_transform: Transform,
               eval_transform: Transform, classes: list[str]) -> tuple[Dataset, Dataset, int]:
    """Apply the holdout / data_fraction rules and wrap in :class:`ImageDataset`s."""
    labels = np.asarray(targets)
    if eval_base is None:
        tr, va = holdout(labels, cfg.val_fraction, cfg.seed)
        val_ds = ImageDataset(base, va, targets, eval_transform, classes)
    else:
        tr = np.arange(len(labels))
        val_ds = ImageDataset(eval_base, None, eval_targets, eval_transform, classes)
    tr = tr[stratified_subset(labels[tr], cfg.data_fraction, cfg.seed)]
    train_ds = ImageDataset(base, tr, targets, train_transform, classes)
    if classes:
        num_classes = len(classes)
    else:
        num_classes = int(max(labels.max(), max(val_ds.targets, default=0))) + 1
    return train_ds, val_ds, num_classes


def build_imagefolder(cfg: DataConfig, train_transform: Transform, eval_transform: Transform
                      ) -> tuple[Dataset, Dataset, int]:
    """``(train, val, num_classes)`` of ``data_dir``: ``train/`` + ``val/`` class folders, or one
    class-folder tree split with ``val_fraction``."""
    from torchvision.datasets import ImageFolder

    root = Path(os.path.expanduser(cfg.data_dir))
    if not root.is_dir():
        raise TrainerError(f"data_dir: folder {str(root)!r} does not exist (dataset 'imagefolder')")
    has_pair = (root / "train").is_dir() and (root / "val").is_dir()
    try:
        if has_pair and cfg.split != "holdout":
            base, eval_base = ImageFolder(str(root / "train")), ImageFolder(str(root / "val"))
            if eval_base.classes != base.classes:
                raise TrainerError(
                    f"data_dir: {root}/train and {root}/val have different class folders "
                    f"({base.classes} vs {eval_base.classes})"
                )
            eval_targets = list(eval_base.targets)
        else:
            if cfg.split == "test":
                raise TrainerError(f"split: 'test' needs {root}/train and {root}/val folders")
            base = ImageFolder(str(root / "train") if has_pair else str(root))
            eval_base, eval_targets = None, None
    except (FileNotFoundError, RuntimeError) as err:
        if isinstance(err, TrainerError):
            raise
        raise TrainerError(
            f"data_dir: {str(root)!r} is not a valid image folder (expected train/ and val/ class "
            f"folders, or class folders directly): {err}"
        ) from err
    return split_base(cfg, base, list(base.targets), eval_base, eval_targets, train_transform,
                      eval_transform, list(base.classes))
