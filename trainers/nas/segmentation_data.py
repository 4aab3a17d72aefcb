"""Semantic-segmentation datasets: the embedded synthetic shapes set and VOC- / COCO-format folders.

Samples are ``(image, mask)``: ``image`` a float tensor ``3xHxW`` in [0, 1], ``mask`` an int64
``HxW`` class map with 0 the background, ``1..num_classes-1`` the object classes and
:data:`IGNORE_INDEX` (255) for pixels that are not scored (VOC's object borders, COCO crowd
regions). Folder images are resized to ``image_size x image_size`` (bilinear; masks nearest), so
batches stack with the default collate.

- :class:`SyntheticShapesSegmentation` is SYNTHETIC data: the scenes of
  :mod:`trainers.nas.synthetic_shapes` (the detection set's shapes, told apart by shape, not
  colour) with their per-pixel label maps; deterministic per ``(seed, index)``, no download. Its
  scores say nothing about real-world segmentation quality.
- :class:`VocSegmentation`: ``root/JPEGImages/<id>.jpg``, ``root/SegmentationClass/<id>.png``
  (a palette PNG whose indices are the classes, or a single-channel index PNG) and
  ``root/ImageSets/Segmentation/<split>.txt`` (one id per line).
- :class:`CocoSegmentation`: an image folder and a COCO instances JSON; each annotation's
  polygons (or uncompressed RLE) are rasterised with PIL, category ids map to classes
  ``1..K`` in id order. pycocotools is needed only for compressed RLE.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset, Subset
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

from trainers.errors import TrainerError
from trainers.nas.detection_data import SyntheticShapes
from trainers.nas.settings import SEGMENTATION_DATASETS

__all__ = [
    "IGNORE_INDEX",
    "SEGMENTATION_DATASETS",
    "CocoSegmentation",
    "SyntheticShapesSegmentation",
    "VocSegmentation",
    "segmentation_datasets",
]

IGNORE_INDEX = 255


class SyntheticShapesSegmentation(Dataset):
    """The synthetic shapes scenes with their label maps (classes: background + the shapes).

    Args:
        num_images: dataset length.
        image_size: square image side in pixels.
        seed: base seed; image ``i`` depends on ``(seed, i)`` only.
        **scene: :class:`~trainers.nas.detection_data.SyntheticShapes` options (``max_objects``,
            ``min_size``, ``max_size``, ``max_occlusion``, ``num_classes`` of shapes).
    """

    def __init__(self, num_images: int = 256, image_size: int = 64, seed: int = 0, **scene: Any):
        self.shapes = SyntheticShapes(num_images, image_size, seed=seed, **scene)
        self.classes = ("background",) + tuple(self.shapes.classes)
        self.num_classes = len(self.classes)

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        sc = self.shapes.scene(index)
        return torch.from_numpy(sc.image.copy()), torch.from_numpy(sc.label_map.copy())


def _to_sample(image: Image.Image, mask: np.ndarray, image_size: int | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(float image 3xHxW, int64 mask HxW)``, both resized to ``image_size`` when given."""
    img = F.to_dtype(F.to_image(image.convert("RGB")), torch.float32, scale=True)
    target = tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))
    if image_size is not None:
        img = F.resize(img, [image_size, image_size], antialias=True)
        target = F.resize(target, [image_size, image_size])
    return img.as_subclass(torch.Tensor), target.as_subclass(torch.Tensor)


def _max_label(masks: Sequence[np.ndarray]) -> int:
    labels = [int(m[m != IGNORE_INDEX].max(initial=0)) for m in masks]
    return max(labels, default=0)


class VocSegmentation(Dataset):
    """A Pascal VOC-format folder (layout in the module docstring), split ``split``.

    ``num_classes`` is the largest label found in the split's masks plus one (255 excluded).

    Raises:
        TrainerError: a missing split file, image or mask, or a mask that is not a palette or
            single-channel PNG.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int | None = None):
        self.root, self.image_size = Path(root), image_size
        ids_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not ids_file.is_file():
            raise TrainerError(f"VOC folder {self.root}: split file {ids_file} not found (need "
                               f"JPEGImages/, SegmentationClass/, ImageSets/Segmentation/)")
        self.ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
        if not self.ids:
            raise TrainerError(f"VOC split file {ids_file} lists no images")
        self.num_classes = _max_label([self._mask(i) for i in self.ids]) + 1

    def _mask(self, image_id: str) -> np.ndarray:
        path = self.root / "SegmentationClass" / f"{image_id}.png"
        if not path.is_file():
            raise TrainerError(f"VOC mask {path} not found")
        with Image.open(path) as m:
            if m.mode not in ("P", "L", "I", "I;16"):
                raise TrainerError(f"VOC mask {path}: need a palette or single-channel index "
                                   f"PNG, got mode {m.mode}")
            return np.array(m)

    def _image(self, image_id: str) -> Image.Image:
        folder = self.root / "JPEGImages"
        for ext in (".jpg", ".jpeg", ".png"):
            if (folder / f"{image_id}{ext}").is_file():
                return Image.open(folder / f"{image_id}{ext}")
        raise TrainerError(f"VOC image {folder / image_id}.jpg not found")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_id = self.ids[index]
        with self._image(image_id) as image:
            return _to_sample(image, self._mask(image_id), self.image_size)


def _decode_rle(segmentation: dict, height: int, width: int) -> np.ndarray:
    """Boolean mask of a COCO RLE (uncompressed ``counts`` list; compressed via pycocotools)."""
    counts = segmentation["counts"]
    if isinstance(counts, list):
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
        if flat.size != height * width:
            raise TrainerError(f"COCO RLE counts sum to {flat.size}, expected {height * width}")
        return flat.reshape(width, height).T  # RLE runs are column-major
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise TrainerError("COCO compressed RLE segmentation needs pycocotools "
                           "(pip install pycocotools), or give polygons") from None
    return mask_utils.decode(segmentation).astype(bool)


def _annotation_mask(ann: dict, height: int, width: int) -> np.ndarray:
    seg = ann.get("segmentation")
    if isinstance(seg, dict):
        return _decode_rle(seg, height, width)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for poly in seg or []:
        if len(poly) >= 6:
            draw.polygon([float(v) for v in poly], fill=1)
    return np.array(canvas, dtype=bool)


class CocoSegmentation(Dataset):
    """Images under ``image_root`` with the COCO instances JSON ``ann_file`` as class masks.

    Category ids map to classes ``1..K`` in id order (``self.classes[0]`` is ``"background"``);
    larger annotations are painted first so smaller objects stay visible; crowd annotations
    become :data:`IGNORE_INDEX`.

    Raises:
        TrainerError: a missing annotation file or an undecodable segmentation.
    """

    def __init__(self, image_root: str | Path, ann_file: str | Path,
                 image_size: int | None = None):
        if not Path(ann_file).is_file():
            raise TrainerError(f"COCO annotation file not found: {ann_file}")
        data = json.loads(Path(ann_file).read_text())
        cats = sorted(data.get("categories", []), key=lambda c: c["id"])
        self.classes = ("background",) + tuple(c["name"] for c in cats)
        self.num_classes = len(self.classes)
        self._label_of = {c["id"]: i + 1 for i, c in enumerate(cats)}
        self.images = sorted(data.get("images", []), key=lambda im: im["id"])
        self._anns: dict[int, list[dict]] = {im["id"]: [] for im in self.images}
        for ann in data.get("annotations", []):
            self._anns.setdefault(ann["image_id"], []).append(ann)
        self.image_root, self.image_size = Path(image_root), image_size

    def mask(self, index: int) -> np.ndarray:
        """The uint8 class mask of image ``index`` at its original size."""
        info = self.images[index]
        h, w = int(info["height"]), int(info["width"])
        out = np.zeros((h, w), np.uint8)
        anns = sorted(self._anns[info["id"]], key=lambda a: -float(a.get("area", 0.0)))
        for ann in anns:
            value = IGNORE_INDEX if ann.get("iscrowd") else self._label_of[ann["category_id"]]
            out[_annotation_mask(ann, h, w)] = value
        return out

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.image_root / self.images[index]["file_name"]) as image:
            return _to_sample(image, self.mask(index), self.image_size)


def _fraction(ds: Dataset, fraction: float, seed: int) -> Dataset:
    """A seeded random ``fraction`` of ``ds`` (at least one sample); ``ds`` itself at 1.0."""
    if fraction >= 1.0:
        return ds
    keep = max(1, round(len(ds) * fraction))
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))
    return Subset(ds, sorted(order[:keep].tolist()))


def segmentation_datasets(dataset: str = "synthetic-shapes", image_size: int = 64,
                          num_train: int = 256, num_val: int = 64,
                          data_dir: str | Path | None = None, data_fraction: float = 1.0,
                          seed: int = 0) -> tuple[Dataset, Dataset, int]:
    """``(train set, val set, num_classes)`` with ``num_classes`` counting the background.

    ``synthetic-shapes`` / ``synthetic``: ``round(num_train * data_fraction)`` training and
    ``num_val`` validation scenes from different seeds. ``voc``: ``data_dir`` in VOC layout,
    splits ``train`` and ``val``. ``coco``: ``data_dir`` holding ``train/``, ``val/`` and
    ``annotations/instances_{train,val}.json`` (the detection layout). Folder training sets keep
    a seeded ``data_fraction`` of their images.

    Raises:
        TrainerError: an unknown dataset name or a folder dataset without ``data_dir``.
    """
    if dataset in ("synthetic-shapes", "synthetic"):
        n_train = max(1, round(num_train * float(data_fraction)))
        train = SyntheticShapesSegmentation(n_train, image_size, seed=seed)
        return train, SyntheticShapesSegmentation(num_val, image_size, seed=seed + 10_000), \
            train.num_classes
    if dataset not in SEGMENTATION_DATASETS:
        raise TrainerError(f"unknown segmentation dataset {dataset!r}; valid: "
                           f"{', '.join(SEGMENTATION_DATASETS)}")
    if data_dir is None:
        raise TrainerError(f"dataset {dataset!r} needs data_dir")
    root = Path(data_dir)
    if dataset == "voc":
        train, val = (VocSegmentation(root, s, image_size) for s in ("train", "val"))
        n = max(train.num_classes, val.num_classes)
    else:
        train, val = (CocoSegmentation(root / s, root / f"annotations/instances_{s}.json",
                                       image_size) for s in ("train", "val"))
        n = train.num_classes
    return _fraction(train, float(data_fraction), seed), val, n
