"""Datasets and loaders for the trainers.

Every dataset built here yields ``(image, label)`` with ``image`` a normalised ``float32`` tensor of
shape ``(3, image_size, image_size)`` and ``label`` an ``int``. Images are kept (or decoded) as
``uint8`` CHW tensors at the target size first, so the training augmentation (a callable on uint8
CHW tensors, see :mod:`trainers.augment`) runs before the float conversion and normalisation.

Datasets (``DataConfig.dataset``):

- ``"digits"`` (default): scikit-learn's embedded handwritten digits (1797 real 8x8 grey images,
  10 classes). No download, no files; fast enough for tests and CPU experiments.
- ``"digits-source"``: digits of classes 0-4 (a "pretraining" task).
- ``"digits-target"``: digits of classes 5-9 relabelled 0-4 (the matching "fine-tuning" task).
- ``"imagefolder"``: ``data_dir`` holding ``train/`` and ``val/`` class folders, or a single class
  folder tree split with ``val_fraction``.
- a torchvision dataset name (``cifar10``, ``cifar100``, ``mnist``, ``fashionmnist``, ``kmnist``,
  ``svhn``, ``stl10``, ``flowers102``, ``food101``, ``dtd``, ``oxfordiiitpet``, ``gtsrb``,
  ``fgvcaircraft``, ``stanfordcars``), read from ``data_dir`` and downloaded only when
  ``download=True``.

The train/validation split of the embedded and single-folder datasets is stratified and fixed by
``DataConfig.seed`` (default 0), which is the *data* seed: keep it independent of the trial seed so
every trial of an experiment sees the same split.
"""
from __future__ import annotations

import difflib
import functools
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from trainers.errors import TrainerError
from trainers.knobs import DATA_KNOBS

__all__ = [
    "DataConfig",
    "TensorImageDataset",
    "ImageDataset",
    "build_datasets",
    "build_loaders",
    "resolve_data_config",
    "source_target_split",
    "stratified_subset",
    "list_datasets",
    "load_digits_uint8",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_EMBEDDED = ("digits", "digits-source", "digits-target")

# torchvision name -> (class name, how to ask for the train split, how to ask for the eval split).
# A split spec is a dict of constructor kwargs.
_TORCHVISION: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "cifar10": ("CIFAR10", {"train": True}, {"train": False}),
    "cifar100": ("CIFAR100", {"train": True}, {"train": False}),
    "mnist": ("MNIST", {"train": True}, {"train": False}),
    "fashionmnist": ("FashionMNIST", {"train": True}, {"train": False}),
    "kmnist": ("KMNIST", {"train": True}, {"train": False}),
    "svhn": ("SVHN", {"split": "train"}, {"split": "test"}),
    "stl10": ("STL10", {"split": "train"}, {"split": "test"}),
    "flowers102": ("Flowers102", {"split": "train"}, {"split": "val"}),
    "food101": ("Food101", {"split": "train"}, {"split": "test"}),
    "dtd": ("DTD", {"split": "train"}, {"split": "val"}),
    "oxfordiiitpet": ("OxfordIIITPet", {"split": "trainval"}, {"split": "test"}),
    "gtsrb": ("GTSRB", {"split": "train"}, {"split": "test"}),
    "fgvcaircraft": ("FGVCAircraft", {"split": "trainval"}, {"split": "test"}),
    "stanfordcars": ("StanfordCars", {"split": "train"}, {"split": "test"}),
}
_ALIASES = {"fashion-mnist": "fashionmnist", "fashion_mnist": "fashionmnist", "cifar-10": "cifar10",
            "cifar-100": "cifar100", "image_folder": "imagefolder", "folder": "imagefolder",
            "oxford_iiit_pet": "oxfordiiitpet", "pets": "oxfordiiitpet"}


def list_datasets() -> list[str]:
    """Every dataset name :func:`build_datasets` accepts, sorted."""
    return sorted((*_EMBEDDED, "imagefolder", *_TORCHVISION))


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in list_datasets():
        close = difflib.get_close_matches(key, list_datasets(), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TrainerError(
            f"dataset: unknown dataset {name!r}.{hint} Valid names: {', '.join(list_datasets())}."
        )
    return key


@dataclass(frozen=True)
class DataConfig:
    """What data a trial trains and validates on, and how it is batched.

    Args:
        dataset: a name from :func:`list_datasets` (case-insensitive). Default ``"digits"``.
        data_dir: root folder of an ``imagefolder`` or torchvision dataset. For torchvision datasets
            with ``download=True`` and no ``data_dir``, ``~/.cache/archtune/datasets`` is used.
        download: let torchvision download a missing dataset. Never set in tests.
        data_fraction: fraction in ``(0, 1]`` of the *training* split kept (stratified, at least
            one image per class); the validation split is never reduced. Used by proxy tasks.
        image_size: side in pixels of the square images the model sees (``>= 1``).
        val_fraction: fraction in ``(0, 1)`` held out for validation when the dataset has no
            validation split of its own (digits, single-folder imagefolder, ``split="holdout"``).
        seed: the data seed fixing the held-out split and the ``data_fraction`` subset (default 0;
            keep it independent of the trial seed). Also the default shuffling seed of
            :func:`build_loaders`.
        num_workers: DataLoader worker processes (``>= 0``).
        batch_size: training batch size (``>= 1``).
        eval_batch_size: validation batch size; ``None`` means ``max(batch_size, 128)``.
        split: where validation images come from. ``None``: the dataset's own evaluation split
            when it has one (torchvision test/val split, ``imagefolder`` ``val/``), else a
            held-out part of the training images. ``"test"``: require the dataset's own split.
            ``"holdout"``: always hold out ``val_fraction`` of the training split.

    Raises:
        TrainerError: naming the field, the bad value and what would be valid.

    Example:
        >>> cfg = DataConfig(dataset="digits", image_size=32, data_fraction=0.5)
    """

    dataset: str = "digits"
    data_dir: str | None = None
    download: bool = False
    data_fraction: float = 1.0
    image_size: int = 32
    val_fraction: float = 0.2
    seed: int = 0
    num_workers: int = 0
    batch_size: int = 64
    eval_batch_size: int | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", _canonical_name(self.dataset))
        DATA_KNOBS.validate_object(self)
        if self.dataset == "imagefolder" and not self.data_dir:
            raise TrainerError("invalid data settings: data_dir is required for dataset "
                               "'imagefolder'")

    @property
    def resolved_eval_batch_size(self) -> int:
        """The validation batch size actually used."""
        if self.eval_batch_size is not None:
            return self.eval_batch_size
        return max(self.batch_size, 128)


# ----------------------------------------------------------------------------------------------
# Dataset classes


class _Normalize:
    """uint8 CHW tensor -> float32 CHW tensor in model space: ``(x / 255 - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std):
            raise TrainerError(f"mean and std must have the same length, got {mean!r} and {std!r}")
        if any(float(s) <= 0 for s in std):
            raise TrainerError(f"std values must be > 0, got {std!r}")
        self.mean = torch.tensor([float(m) for m in mean], dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor([float(s) for s in std], dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.to(torch.float32).div_(255.0)
        return (x - self.mean) / self.std


class TensorImageDataset(Dataset):
    """Images held in memory as ``uint8`` tensors of shape ``(N, C, H, W)`` with ``C`` in {1, 3}.

    ``__getitem__`` returns ``(float32 (3, H, W) normalised image, int label)``: a grey image is
    repeated to 3 channels, then ``transform`` (a callable on a ``uint8 (3, H, W)`` tensor, e.g.
    from :func:`trainers.augment.build_train_transform`) is applied, then ``x / 255`` is
    normalised with ``mean``/``std``. Attributes ``targets`` (list of int) and ``classes``
    describe the labels.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: Sequence[int] | torch.Tensor | np.ndarray,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        classes: Sequence[str] | None = None,
    ):
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
        self.transform = transform
        self.normalize = _Normalize(mean, std)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img = self.images[index]
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        if self.transform is not None:
            img = self.transform(img.contiguous())
        return self.normalize(img), self.targets[index]


class ImageDataset(Dataset):
    """A view of a PIL-returning dataset (``ImageFolder``, torchvision datasets) at a fixed size.

    Each item is decoded to RGB, converted to a ``uint8 (3, S, S)`` tensor (resize of the shorter
    side to ``image_size`` then centre crop), passed through ``transform`` (uint8 -> uint8), then
    normalised like :class:`TensorImageDataset`. ``indices`` selects a subset of ``base``.
    """

    def __init__(
        self,
        base: Dataset,
        indices: Sequence[int] | None,
        targets: Sequence[int],
        image_size: int,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        classes: Sequence[str] | None = None,
    ):
        from torchvision.transforms import v2

        self.base = base
        self.indices = list(range(len(base))) if indices is None else [int(i) for i in indices]
        all_targets = list(targets)
        self.targets: list[int] = [int(all_targets[i]) for i in self.indices]
        if classes is None:
            classes = sorted({str(t) for t in self.targets})
        self.classes = list(classes)
        self.transform = transform
        self.normalize = _Normalize(mean, std)
        self.to_tensor = v2.Compose([
            v2.ToImage(),
            v2.Resize(image_size, antialias=True),
            v2.CenterCrop(image_size),
        ])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        img, _ = self.base[self.indices[index]]
        if hasattr(img, "convert"):
            img = img.convert("RGB")
        img = self.to_tensor(img).as_subclass(torch.Tensor)
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1).contiguous()
        if self.transform is not None:
            img = self.transform(img)
        return self.normalize(img), self.targets[index]


# ----------------------------------------------------------------------------------------------
# Splits


def source_target_split(
    labels: Sequence[int] | np.ndarray, source_classes: Sequence[int] = (0, 1, 2, 3, 4)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a labelled set into a source task and a target task with disjoint classes.

    Returns ``(source_indices, source_labels, target_indices, target_labels)``; each task's labels
    are relabelled to ``0..k-1`` in increasing order of the original class. With the default
    ``source_classes`` on digits: source = digits 0-4, target = digits 5-9 relabelled 0-4.
    """
    labels = np.asarray(labels)
    source_set = sorted({int(c) for c in source_classes})
    is_source = np.isin(labels, source_set)
    target_set = sorted({int(c) for c in np.unique(labels[~is_source])})
    src_idx = np.flatnonzero(is_source)
    tgt_idx = np.flatnonzero(~is_source)
    src_map = {c: i for i, c in enumerate(source_set)}
    tgt_map = {c: i for i, c in enumerate(target_set)}
    src_lab = np.array([src_map[int(c)] for c in labels[src_idx]], dtype=np.int64)
    tgt_lab = np.array([tgt_map[int(c)] for c in labels[tgt_idx]], dtype=np.int64)
    return src_idx, src_lab, tgt_idx, tgt_lab


def _holdout(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_indices, val_indices) of ``labels``; falls back to unstratified when a
    class is too small to appear on both sides."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    n_classes = len(counts)
    n_val = int(np.ceil(val_fraction * len(labels)))
    can_stratify = counts.min() >= 2 and n_classes <= n_val <= len(labels) - n_classes
    stratify = labels if can_stratify else None
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=stratify, random_state=seed)
    return np.sort(tr), np.sort(va)


def stratified_subset(
    labels: Sequence[int] | np.ndarray, fraction: float, seed: int = 0
) -> np.ndarray:
    """Positions (sorted) of a stratified ``fraction`` of ``labels``, at least one per class.

    ``fraction >= 1`` returns every position. Deterministic for a given ``seed``.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    n = len(labels)
    if fraction >= 1.0 or n == 0:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    k = max(len(classes), int(round(fraction * n)))
    if k >= n:
        return np.arange(n)
    stratify = labels if counts.min() >= 2 and n - k >= len(classes) else None
    keep, _ = train_test_split(np.arange(n), train_size=k, stratify=stratify, random_state=seed)
    if stratify is None:  # make sure every class keeps at least one image
        missing = set(classes.tolist()) - set(labels[keep].tolist())
        extra = [int(np.flatnonzero(labels == c)[0]) for c in sorted(missing)]
        keep = np.concatenate([keep, np.array(extra, dtype=keep.dtype)])
    return np.sort(keep)


# ----------------------------------------------------------------------------------------------
# Embedded digits


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


def _build_digits(cfg: DataConfig, mean, std, train_transform):
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
    tr, va = _holdout(labels, cfg.val_fraction, cfg.seed)
    tr = tr[stratified_subset(labels[tr], cfg.data_fraction, cfg.seed)]
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    train_ds = TensorImageDataset(images[tr_t], labels[tr], mean, std, train_transform, classes)
    val_ds = TensorImageDataset(images[va_t], labels[va], mean, std, None, classes)
    return train_ds, val_ds, len(classes)


# ----------------------------------------------------------------------------------------------
# Folders and torchvision datasets


def _targets_of(ds: Dataset) -> list[int]:
    for attr in ("targets", "labels", "_labels", "_targets"):
        value = getattr(ds, attr, None)
        if value is not None:
            return [int(t) for t in (value.tolist() if hasattr(value, "tolist") else value)]
    samples = getattr(ds, "_samples", None) or getattr(ds, "samples", None)
    if samples is not None:
        return [int(s[1]) for s in samples]
    return [int(ds[i][1]) for i in range(len(ds))]  # generic and slow, last resort


def _split_base(cfg: DataConfig, base: Dataset, targets: list[int], eval_base: Dataset | None,
                eval_targets: list[int] | None, mean, std, train_transform, classes):
    """Apply the holdout / data_fraction rules and wrap in :class:`ImageDataset`s."""
    labels = np.asarray(targets)
    if eval_base is None:
        tr, va = _holdout(labels, cfg.val_fraction, cfg.seed)
        val_ds = ImageDataset(base, va, targets, cfg.image_size, mean, std, None, classes)
    else:
        tr = np.arange(len(labels))
        val_ds = ImageDataset(eval_base, None, eval_targets, cfg.image_size, mean, std, None,
                              classes)
    tr = tr[stratified_subset(labels[tr], cfg.data_fraction, cfg.seed)]
    train_ds = ImageDataset(base, tr, targets, cfg.image_size, mean, std, train_transform, classes)
    if classes:
        num_classes = len(classes)
    else:
        num_classes = int(max(labels.max(), max(val_ds.targets, default=0))) + 1
    return train_ds, val_ds, num_classes


def _build_imagefolder(cfg: DataConfig, mean, std, train_transform):
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
    return _split_base(cfg, base, list(base.targets), eval_base, eval_targets, mean, std,
                       train_transform, list(base.classes))


def _build_torchvision(cfg: DataConfig, mean, std, train_transform):
    import torchvision.datasets as tvd

    cls_name, train_kw, eval_kw = _TORCHVISION[cfg.dataset]
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
    targets = _targets_of(base)
    if not classes:
        classes = [str(c) for c in range(max(targets) + 1)]
    eval_targets = None if eval_base is None else _targets_of(eval_base)
    return _split_base(cfg, base, targets, eval_base, eval_targets, mean, std, train_transform,
                       list(classes))


def build_datasets(
    cfg: DataConfig,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    train_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[Dataset, Dataset, int]:
    """Build ``(train_ds, val_ds, num_classes)`` for ``cfg``.

    Both datasets yield ``(float32 (3, S, S) image normalised with mean/std, int label)`` with
    ``S = cfg.image_size``; ``train_transform`` (uint8 CHW -> uint8 CHW, see
    :func:`trainers.augment.build_train_transform`) is applied to training images only. Both expose
    ``.targets`` (list of int labels) and ``.classes``.

    Raises:
        TrainerError: unknown dataset, missing files (with the ``download`` hint), bad split.

    Example:
        >>> train_ds, val_ds, n = build_datasets(DataConfig("digits-target", image_size=16))
        >>> n
        5
    """
    if not isinstance(cfg, DataConfig):
        raise TrainerError(f"build_datasets expects a DataConfig, got {type(cfg).__name__}")
    if cfg.dataset in _EMBEDDED:
        return _build_digits(cfg, mean, std, train_transform)
    if cfg.dataset == "imagefolder":
        return _build_imagefolder(cfg, mean, std, train_transform)
    return _build_torchvision(cfg, mean, std, train_transform)


# ----------------------------------------------------------------------------------------------
# Loaders and model data config


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


def resolve_data_config(
    model: torch.nn.Module,
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[int, int, int]]:
    """``(mean, std, input_size)`` the model expects, from timm's pretrained config.

    ``input_size`` is ``(C, H, W)``. Falls back to ImageNet statistics and ``(3, 224, 224)`` for a
    model without a timm pretrained config.
    """
    try:
        from timm.data import resolve_model_data_config

        dc = resolve_model_data_config(model)
    except Exception:  # not a timm model: use timm's generic resolver on an empty args dict
        try:
            from timm.data import resolve_data_config as _timm_resolve

            dc = _timm_resolve({}, model=model)
        except Exception:
            dc = {}
    mean = tuple(float(m) for m in dc.get("mean", IMAGENET_MEAN))
    std = tuple(float(s) for s in dc.get("std", IMAGENET_STD))
    input_size = tuple(int(v) for v in dc.get("input_size", (3, 224, 224)))
    return mean, std, input_size  # type: ignore[return-value]
