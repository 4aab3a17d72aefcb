"""Datasets and loaders for the trainers (the public facade of :mod:`trainers.datasets`).

One module per concept:

- :mod:`trainers.datasets.config`: :class:`DataConfig` and the dataset names;
- :mod:`trainers.datasets.base`: the two dataset classes;
- :mod:`trainers.datasets.splits`: held-out splits and stratified subsets;
- :mod:`trainers.datasets.digits`, :mod:`~trainers.datasets.folders`,
  :mod:`~trainers.datasets.torchvision_sets`: the three dataset families;
- :mod:`trainers.datasets.loaders`: DataLoaders;
- :mod:`trainers.transforms`: the image pipelines.

Every dataset yields ``(transform(image), int label)`` and exposes ``targets`` and ``classes``.
:func:`build_datasets` builds the pipelines: the fine-tuning trainer passes timm's training and
evaluation pipelines (``transforms=``); other callers get the fixed-size pipeline (resize +
centre crop to ``image_size``, an optional uint8 ``train_transform``, normalise).

The train/validation split of the embedded and single-folder datasets is stratified and fixed by
``DataConfig.seed`` (default 0), which is the *data* seed: keep it independent of the trial seed so
every trial of an experiment sees the same split.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from trainers.errors import TrainerError

from .datasets.base import ImageDataset, TensorImageDataset
from .datasets.config import EMBEDDED, IMAGENET_MEAN, IMAGENET_STD, DataConfig, list_datasets
from .datasets.digits import build_digits, load_digits_uint8
from .datasets.folders import build_imagefolder
from .datasets.loaders import build_loaders
from .datasets.splits import source_target_split, stratified_subset
from .datasets.torchvision_sets import build_torchvision
from .transforms import create_fixed_transform
from .transforms import resolve_data_config as _model_data_config

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataConfig",
    "ImageDataset",
    "TensorImageDataset",
    "build_datasets",
    "build_loaders",
    "list_datasets",
    "load_digits_uint8",
    "resolve_data_config",
    "source_target_split",
    "stratified_subset",
]

Transform = Callable[[Any], torch.Tensor]


def build_datasets(
    cfg: DataConfig,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    transforms: tuple[Transform, Transform] | None = None,
) -> tuple[Dataset, Dataset, int]:
    """Build ``(train_ds, val_ds, num_classes)`` for ``cfg``.

    ``transforms=(train, eval)``: whole pipelines (image -> model input, e.g.
    :func:`trainers.transforms.create_train_transform`); ``mean``, ``std`` and
    ``train_transform`` must then be left out. Otherwise both datasets yield
    ``float32 (3, S, S)`` images (``S = cfg.image_size``) normalised with ``mean``/``std``, and
    ``train_transform`` (uint8 CHW -> uint8 CHW, e.g.
    :func:`trainers.augment.build_train_transform`) augments training images only.

    Raises:
        TrainerError: unknown dataset, missing files (with the ``download`` hint), bad split,
            or ``transforms`` given together with ``train_transform``.

    Example:
        >>> train_ds, val_ds, n = build_datasets(DataConfig("digits-target", image_size=16))
        >>> n
        5
    """
    if not isinstance(cfg, DataConfig):
        raise TrainerError(f"build_datasets expects a DataConfig, got {type(cfg).__name__}")
    if transforms is None:
        transforms = (create_fixed_transform(cfg.image_size, mean, std, train_transform),
                      create_fixed_transform(cfg.image_size, mean, std))
    elif train_transform is not None:
        raise TrainerError("build_datasets: give either transforms or train_transform, not both")
    if cfg.dataset in EMBEDDED:
        return build_digits(cfg, *transforms)
    if cfg.dataset == "imagefolder":
        return build_imagefolder(cfg, *transforms)
    return build_torchvision(cfg, *transforms)


def resolve_data_config(
    model: torch.nn.Module,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, int, int]]:
    """``(mean, std, input_size)`` the model expects, from timm's data config (ImageNet
    statistics and ``(3, 224, 224)`` for a model timm knows nothing of). The whole config
    (interpolation, ``crop_pct``) is :func:`trainers.transforms.resolve_data_config`."""
    dc = _model_data_config(model)
    mean = tuple(float(m) for m in dc.get("mean", IMAGENET_MEAN))
    std = tuple(float(s) for s in dc.get("std", IMAGENET_STD))
    input_size = tuple(int(v) for v in dc.get("input_size", (3, 224, 224)))
    return mean, std, input_size  # type: ignore[return-value]
