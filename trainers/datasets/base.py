"""The two dataset classes every family returns.

Both yield ``(transform(image), int label)`` and expose ``targets`` (list of int) and
``classes``. ``transform`` is a whole pipeline (see :mod:`trainers.transforms`): it takes the
decoded image -- a ``uint8 (3, H, W)`` tensor for :class:`TensorImageDataset`, an RGB PIL image
for :class:`ImageDataset` -- and returns the model input.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainers.errors import TrainerError

__all__ = ["ImageDataset", "TensorImageDataset"]

Transform = Callable[[Any], torch.Tensor]


def _default_transform() -> Transform:
    from trainers.transforms import create_fixed_transform

    return create_fixed_transform(None)


class TensorImageDataset(Dataset):
    """Images held in memory as ``uint8`` tensors of shape ``(N, C, H, W)`` with ``C`` in {1, 3}.

    A grey image is repeated to 3 channels before ``transform`` (default: ``x / 255`` normalised
    with ImageNet statistics, no resizing).
    """

    def __init__(self, images: torch.Tensor, labels: Sequence[int] | torch.Tensor | np.ndarray,
                 transform: Transform | None = None, classes: Sequence[str] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise TrainerError(
                "images must be a uint8 tensor (N, 1|3, H, W), "
                f"got {images.dtype} {tuple(images.shape)}"
            )
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if labels.ndim != 1 or len(labels) != len(images):
            raise TrainerError(f"expected {len(images)} labels, got shape {tuple(labels.shape)}")
        self.images = images
        self.labels = labels
        self.targets: list[int] = labels.tolist()
        if classes is None:
            classes = [str(c) for c in range(int(labels.max()) + 1 if len(labels) else 0)]
        self.classes = list(classes)
        self.transform = transform if transform is not None else _default_transform()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        return self.transform(img.contiguous()), self.targets[index]


class ImageDataset(Dataset):
    """A view of a PIL-returning dataset (``ImageFolder``, torchvision datasets): each item is
    decoded to RGB and passed through ``transform``. ``indices`` selects a subset of ``base``."""

    def __init__(self, base: Dataset, indices: Sequence[int] | None, targets: Sequence[int],
                 transform: Transform | None = None, classes: Sequence[str] | None = None):
        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]
        all_targets = list(targets)
        self.targets: list[int] = [int(all_targets[i]) for i in self.indices]
        if classes is None:
            classes = sorted({str(t) for t in self.targets})
        self.classes = list(classes)
        self.transform = transform if transform is not None else _default_transform()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, _ = self.base[self.indices[index]]
        if hasattr(img, "convert"):
            img = img.convert("RGB")
        return self.transform(img), self.targets[index]
