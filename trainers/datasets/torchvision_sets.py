"""The torchvision family: the datasets named in :data:`trainers.datasets.config.TORCHVISION`,
read from ``data_dir`` and downloaded only when ``download`` is true."""
from __future__ import annotations

import os

from torch.utils.data import Dataset

from trainers.errors import TrainerError

from .base import Transform
from .config import TORCHVISION, DataConfig
from .folders import split_base, targets_of

__all__ = ["build_torchvision"]


def build_torchvision(cfg: DataConfig, train_transform: Transform, eval_transform: Transform
                      ) -> tuple[Dataset, Dataset, int]:
    """``(train, val, num_classes)`` of a torchvision dataset read from ``data_dir``."""
    import torchvision.datasets as tvd

    cls_name, train_kw, eval_kw = TORCHVISION[cfg.dataset]
    cls = getattr(tvd, cls_name, None)
    if cls is None:
        raise TrainerError(f"dataset: torchvision has no {cls_name} in this version")
    if cfg.data_dir:
        root = os.path.expanduser(cfg.data_dir)
    elif cfg.download:
        root = os.path.expanduser("~/.cache/archtune/datasets")
    else:
        raise TrainerError(
            f"data_dir: dataset {cfg.dataset!r} needs data_dir (the folder holding it), "
            f"or download: true to fetch it"
        )
    try:
        base = cls(root, download=cfg.download, **train_kw)
        eval_base = None if cfg.split == "holdout" else cls(root, download=cfg.download, **eval_kw)
    except (RuntimeError, FileNotFoundError, OSError) as err:
        hint = "" if cfg.download else " Set download: true, or point data_dir at a copy."
        raise TrainerError(
            f"dataset {cfg.dataset!r} ({cls_name}) could not be loaded from data_dir {root!r}: "
            f"{err}.{hint}"
        ) from err
    classes = getattr(base, "classes", None)
    targets = targets_of(base)
    if not classes:
        classes = [str(c) for c in range(max(targets) + 1)]
    eval_targets = None if eval_base is None else targets_of(eval_base)
    return split_base(cfg, base, targets, eval_base, eval_targets, train_transform,
                      eval_transform, list(classes))
