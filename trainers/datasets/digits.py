"""The embedded digits family: ``digits``, ``digits-source`` (classes 0-4) and ``digits-target``
(classes 5-9 relabelled 0-4), scikit-learn's 1797 real 8x8 grey images; no files, no download."""
from __future__ import annotations

import functools

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.errors import TrainerError

from .base import TensorImageDataset, Transform
from .config import DataConfig
from .splits import holdout, source_target_split, stratified_subset

__all__ = ["build_digits", "load_digits_uint8"]


@functools.lru_cache(maxsize=2)
def load_digits_uint8(image_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """scikit-learn's digits as ``uint8 (1797, 1, S, S)`` (0-16 grey levels scaled to 0-255,
    resized bilinearly with antialiasing) and their ``int64`` labels. Cached per size; callers
    must not modify the returned tensor in place."""
    from sklearn.datasets import load_digits
    from torchvision.transforms.v2 import functional as TF

    digits = load_digits()
    imgs = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) * (255.0 / 16.0))
    imgs = imgs.round().clamp_(0, 255).to(torch.uint8).unsqueeze(1)  # (N, 1, 8, 8)
    if image_size != imgs.shape[-1]:
        imgs = TF.resize(imgs, [image_size, image_size], antialias=True)
    imgs = imgs.contiguous()
    return imgs, np.asarray(digits.target, dtype=np.int64)


def build_digits(cfg: DataConfig, train_transform: Transform, eval_transform: Transform
                 ) -> tuple[Dataset, Dataset, int]:
    """``(train, val, num_classes)`` of an embedded digits dataset: images stored at
    ``cfg.image_size`` (see :func:`load_digits_uint8`), a stratified held-out split."""
    images, labels = load_digits_uint8(cfg.image_size)
    classes = [str(c) for c in range(10)]
    if cfg.dataset != "digits":
        src_idx, src_lab, tgt_idx, tgt_lab = source_target_split(labels)
        if cfg.dataset == "digits-source":
            images, labels, classes = images[torch.as_tensor(src_idx)], src_lab, classes[:5]
        else:
            images, labels, classes = images[torch.as_tensor(tgt_idx)], tgt_lab, classes[5:]
    if cfg.split == "test":
        raise TrainerError(
            f"split: dataset {cfg.dataset!r} has no test split; use split=None or 'holdout'"
        )
    tr, va = holdout(labels, cfg.val_fraction, cfg.seed)
    tr = tr[stratified_subset(labels[tr], cfg.data_fraction, cfg.seed)]
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    train_ds = TensorImageDataset(images[tr_t], labels[tr], train_transform, classes)
    val_ds = TensorImageDataset(images[va_t], labels[va], eval_transform, classes)
    return train_ds, val_ds, len(classes)
