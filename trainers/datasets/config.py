"""What data a trial uses: :class:`DataConfig` and the dataset names.

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
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from trainers.errors import TrainerError
from trainers.knobs import DATA_KNOBS

__all__ = [
    "EMBEDDED",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TORCHVISION",
    "DataConfig",
    "canonical_name",
    "list_datasets",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

EMBEDDED = ("digits", "digits-source", "digits-target")

# torchvision name -> (class name, how to ask for the train split, how to ask for the eval split).
# A split spec is a dict of constructor kwargs.
TORCHVISION: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
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
    return sorted((*EMBEDDED, "imagefolder", *TORCHVISION))


def canonical_name(name: str) -> str:
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
        object.__setattr__(self, "dataset", canonical_name(self.dataset))
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
