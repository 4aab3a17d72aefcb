"""Detection datasets: an embedded synthetic shapes set and COCO-format folders.

Samples are ``(image, target)`` with ``image`` a float tensor ``3xHxW`` in [0, 1] and ``target``
a dict of ``boxes`` (float ``Nx4``, absolute ``x1, y1, x2, y2`` pixels), ``labels`` (int64,
contiguous ``0..num_classes-1``) and ``image_id`` — the format torchvision detectors and
``torchmetrics.detection.MeanAveragePrecision`` consume. Batch them with
:func:`collate_detection` (lists, images may differ in size).

:class:`SyntheticShapes` is SYNTHETIC data: procedurally drawn rectangles, ellipses, triangles
and crosses (classes 0..3, told apart by shape, not colour) of spread sizes with bounded
occlusion on a textured background (:mod:`trainers.nas.synthetic_shapes`), deterministic per
``(seed, index)``. It needs no download and exists for tests, benchmarks and proxy tasks; its
scores say nothing about real-world detection quality.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils.data import DataLoader, Dataset

from trainers.errors import TrainerError
from trainers.nas.synthetic_shapes import SHAPE_CLASSES, Scene, draw_scene

__all__ = [
    "SHAPE_CLASSES",
    "CocoFormatDetection",
    "SyntheticShapes",
    "collate_detection",
    "detection_loaders",
]

class SyntheticShapes(Dataset):
    """Synthetic detection set of filled shapes (see :mod:`trainers.nas.synthetic_shapes`).

    Args:
        num_images: dataset length.
        image_size: square image side in pixels.
        max_objects: 1..max_objects shapes per image.
        min_size / max_size: object side range (log-uniform) as a fraction of ``image_size``.
        max_occlusion: largest hidden fraction of any labelled object.
        seed: base seed; image ``i`` is generated from ``(seed, i)`` only.
        num_classes: 1..4 shape classes (the first of ``SHAPE_CLASSES``).

    Drawn scenes are cached in memory (``num_images`` x 3 x S x S floats).
    """

    classes = SHAPE_CLASSES
    num_classes = len(SHAPE_CLASSES)

    def __init__(self, num_images: int = 256, image_size: int = 128, max_objects: int = 3,
                 min_size: float = 0.15, max_size: float = 0.6, seed: int = 0,
                 max_occlusion: float = 0.3, num_classes: int = len(SHAPE_CLASSES)):
        if num_images < 1 or image_size < 16 or max_objects < 1:
            raise TrainerError(f"need num_images >= 1, image_size >= 16, max_objects >= 1; got "
                             f"{num_images}, {image_size}, {max_objects}")
        if not 0 < min_size <= max_size <= 1:
            raise TrainerError(f"need 0 < min_size <= max_size <= 1, got {min_size}, {max_size}")
        if not 0 <= max_occlusion < 1:
            raise TrainerError(f"need 0 <= max_occlusion < 1, got {max_occlusion}")
        if not 1 <= num_classes <= len(SHAPE_CLASSES):
            raise TrainerError(f"num_classes must be in 1..{len(SHAPE_CLASSES)}, got {num_classes}")
        self.num_images = num_images
        self.image_size = image_size
        self.max_objects = max_objects
        self.min_size = min_size
        self.max_size = max_size
        self.max_occlusion = max_occlusion
        self.seed = seed
        self.num_classes = int(num_classes)
        self.classes = SHAPE_CLASSES[:self.num_classes]
        self._cache: dict[int, Scene] = {}

    def __len__(self) -> int:
        return self.num_images

    def scene(self, index: int) -> Scene:
        """The drawn scene of image ``index`` (image, boxes, labels and label map)."""
        if not 0 <= index < self.num_images:
            raise IndexError(index)
        if index not in self._cache:
            self._cache[index] = draw_scene(self.seed, index, self.image_size, self.max_objects,
                                            self.min_size, self.max_size, self.max_occlusion,
                                            self.num_classes)
        return self._cache[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        sc = self.scene(index)
        return torch.from_numpy(sc.image.copy()), {"boxes": torch.from_numpy(sc.boxes.copy()),
                                                   "labels": torch.from_numpy(sc.labels.copy()),
                                                   "image_id": torch.tensor(index)}


class CocoFormatDetection(Dataset):
    """A COCO-format folder (images + instances JSON) through torchvision's ``CocoDetection``
    wrapped for ``transforms.v2``; category ids are mapped to contiguous labels
    ``0..num_classes-1`` (``self.classes`` holds the category names in that order).

    ``transforms`` defaults to ToImage -> ToDtype(float32, scale) (+ random horizontal flip when
    ``train``) -> SanitizeBoundingBoxes; boxes move with the image.
    """

    def __init__(self, image_root: str | Path, ann_file: str | Path, train: bool = False,
                 transforms: Callable | None = None):
        from torchvision.datasets import CocoDetection, wrap_dataset_for_transforms_v2
        from torchvision.transforms import v2

        if not Path(ann_file).is_file():
            raise FileNotFoundError(f"COCO annotation file not found: {ann_file}")
        if transforms is None:
            ops: list[Any] = [v2.ToImage()]
            if train:
                ops.append(v2.RandomHorizontalFlip())
            ops += [v2.ToDtype(torch.float32, scale=True), v2.SanitizeBoundingBoxes()]
            transforms = v2.Compose(ops)
        base = CocoDetection(str(image_root), str(ann_file), transforms=transforms)
        self.dataset = wrap_dataset_for_transforms_v2(base, target_keys=("boxes", "labels",
                                                                         "image_id"))
        cats = sorted(base.coco.cats.values(), key=lambda c: c["id"])
        self.classes = tuple(c["name"] for c in cats)
        self.num_classes = len(cats)
        self._label_of = {c["id"]: i for i, c in enumerate(cats)}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        img, tgt = self.dataset[index]
        boxes = tgt.get("boxes")
        boxes = (torch.zeros((0, 4)) if boxes is None
                 else torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        labels = tgt.get("labels", torch.zeros(0, dtype=torch.int64))
        labels = torch.as_tensor([self._label_of[int(c)] for c in labels], dtype=torch.int64)
        return torch.as_tensor(img), {"boxes": boxes, "labels": labels,
                                      "image_id": torch.tensor(int(tgt.get("image_id", index)))}


def collate_detection(batch: list) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Batch detection samples as (list of images, list of targets)."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def detection_loaders(dataset: str = "synthetic", batch_size: int = 8, image_size: int = 96,
                      num_train: int = 256, num_val: int = 64, seed: int = 0,
                      data_dir: str | Path | None = None, num_workers: int = 0
                      ) -> tuple[DataLoader, DataLoader, int]:
    """(train loader, val loader, num_classes).

    ``dataset="synthetic"``: :class:`SyntheticShapes` (train and val from different seeds).
    ``dataset="coco"``: ``data_dir`` holding ``train/``, ``val/`` image folders and
    ``annotations/instances_{train,val}.json``.
    """
    if dataset == "synthetic":
        train = SyntheticShapes(num_train, image_size, seed=seed)
        val = SyntheticShapes(num_val, image_size, seed=seed + 10_000)
    elif dataset == "coco":
        if data_dir is None:
            raise TrainerError("dataset='coco' needs data_dir")
        root = Path(data_dir)
        train = CocoFormatDetection(root / "train", root / "annotations/instances_train.json",
                                    train=True)
        val = CocoFormatDetection(root / "val", root / "annotations/instances_val.json")
    else:
        raise TrainerError(f"unknown detection dataset {dataset!r}; valid: ['coco', 'synthetic']")
    gen = torch.Generator().manual_seed(seed)
    return (DataLoader(train, batch_size, shuffle=True, collate_fn=collate_detection,
                       num_workers=num_workers, generator=gen),
            DataLoader(val, batch_size, shuffle=False, collate_fn=collate_detection,
                       num_workers=num_workers),
            train.num_classes)
