"""Datasets and loaders (trainers/data.py). No downloads: embedded digits and temporary folders."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.errors import TrainerError
from trainers.augment import build_train_transform
from trainers.data import (
    DataConfig,
    build_datasets,
    build_loaders,
    list_datasets,
    load_digits_uint8,
    resolve_data_config,
    source_target_split,
    stratified_subset,
)

torch.set_num_threads(1)
HALF = (0.5, 0.5, 0.5)


def _val_indices_key(ds) -> list[str]:
    return [hashlib.sha1(ds.images[i].numpy().tobytes()).hexdigest() for i in range(len(ds))]


def test_digits_default_split_shapes_and_normalisation():
    cfg = DataConfig()
    train, val, n = build_datasets(cfg, mean=HALF, std=HALF)
    assert n == 10
    assert len(train) + len(val) == 1797
    assert len(val) == int(np.ceil(0.2 * 1797))
    x, y = train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    assert torch.equal(x[0], x[1]) and torch.equal(x[1], x[2])  # grey repeated to RGB
    assert x.min() >= -1.0 and x.max() <= 1.0 and x.min() == -1.0  # black background -> -mean/std
    # stratified: every class in both splits, in about the same proportions
    tr_counts, va_counts = Counter(train.targets), Counter(val.targets)
    assert set(tr_counts) == set(va_counts) == set(range(10))
    for c in range(10):
        assert abs(va_counts[c] / (va_counts[c] + tr_counts[c]) - 0.2) < 0.03


def test_digits_pixels_match_sklearn():
    from sklearn.datasets import load_digits

    raw = load_digits()
    train, val, _ = build_datasets(DataConfig(image_size=8), mean=(0, 0, 0), std=(1, 1, 1))
    x, y = val[0]
    expected = torch.from_numpy(raw.images.astype(np.float32) / 16.0)
    # the image is one of sklearn's images with the same label (up to uint8 rounding)
    assert any(
        bool(torch.abs(x[0] - e).max() < 1 / 255 + 1e-6) and int(raw.target[i]) == y
        for i, e in enumerate(expected)
    )


def test_split_is_fixed_by_data_seed_only():
    a_train, a_val, _ = build_datasets(DataConfig(seed=0))
    b_train, b_val, _ = build_datasets(DataConfig(seed=0, batch_size=8, num_workers=0))
    c_train, c_val, _ = build_datasets(DataConfig(seed=1))
    assert _val_indices_key(a_val) == _val_indices_key(b_val)
    assert _val_indices_key(a_val) != _val_indices_key(c_val)
    assert len(a_val) == len(c_val)


def test_source_and_target_tasks():
    images, labels = load_digits_uint8(8)
    src, tgt = {}, {}
    for name, store in (("digits-source", src), ("digits-target", tgt)):
        train, val, n = build_datasets(DataConfig(name, image_size=8))
        assert n == 5
        assert sorted(set(train.targets)) == sorted(set(val.targets)) == [0, 1, 2, 3, 4]
        store["train"], store["val"] = train, val
    assert len(src["train"]) + len(src["val"]) == int((labels < 5).sum())
    assert len(tgt["train"]) + len(tgt["val"]) == int((labels >= 5).sum())
    # a target image with label k is a real digit k + 5
    lookup = {}
    for img, lab in zip(images, labels):
        lookup.setdefault(img.numpy().tobytes(), set()).add(int(lab))
    for i in range(0, len(tgt["val"]), 17):
        assert tgt["val"].targets[i] + 5 in lookup[tgt["val"].images[i].numpy().tobytes()]
    for i in range(0, len(src["val"]), 17):
        assert src["val"].targets[i] in lookup[src["val"].images[i].numpy().tobytes()]


def test_source_target_split_helper():
    labels = np.array([0, 5, 9, 4, 7, 0])
    s_idx, s_lab, t_idx, t_lab = source_target_split(labels)
    assert s_idx.tolist() == [0, 3, 5] and s_lab.tolist() == [0, 4, 0]
    assert t_idx.tolist() == [1, 2, 4] and t_lab.tolist() == [0, 2, 1]  # ranks in {5,7,9}


def test_data_fraction_is_stratified_subset_of_train_only():
    full_train, full_val, _ = build_datasets(DataConfig())
    train, val, _ = build_datasets(DataConfig(data_fraction=0.25))
    assert len(val) == len(full_val)
    assert abs(len(train) - round(0.25 * len(full_train))) <= 1
    assert set(train.targets) == set(range(10))
    counts = Counter(train.targets)
    assert max(counts.values()) - min(counts.values()) <= 4
    tiny, _, _ = build_datasets(DataConfig(data_fraction=0.001))
    assert sorted(set(tiny.targets)) == list(range(10))  # at least one image per class


def test_stratified_subset_helper():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 20)
    keep = stratified_subset(labels, 0.5, seed=3)
    assert len(keep) == 50 and list(keep) == sorted(keep)
    assert Counter(labels[keep].tolist()) == {0: 25, 1: 15, 2: 10}
    assert stratified_subset(labels, 1.0).tolist() == list(range(100))
    assert set(labels[stratified_subset(labels, 0.01)]) == {0, 1, 2}


def test_image_size_and_train_transform_only_on_train():
    class Blackout:
        def __call__(self, img):
            assert img.dtype == torch.uint8 and img.shape == (3, 48, 48)
            return torch.zeros_like(img)

    train, val, _ = build_datasets(DataConfig(image_size=48), mean=HALF, std=HALF,
                                   train_transform=Blackout())
    x, _ = train[3]
    assert x.shape == (3, 48, 48) and torch.all(x == -1.0)
    v, _ = val[3]
    assert v.shape == (3, 48, 48) and v.max() > 0


def test_real_augmentation_through_dataset():
    aug = build_train_transform({"data-augmentation": "trivial-augment"})
    train, _, _ = build_datasets(DataConfig(image_size=32), train_transform=aug)
    plain, _, _ = build_datasets(DataConfig(image_size=32))
    torch.manual_seed(0)
    diffs = [not torch.equal(train[i][0], plain[i][0]) for i in range(10)]
    assert any(diffs)
    assert all(train[i][0].dtype == torch.float32 for i in range(3))


def test_loaders_batches_order_and_drop_last():
    cfg = DataConfig(batch_size=100, data_fraction=0.5)
    train, val, _ = build_datasets(cfg)
    tl, vl = build_loaders(train, val, cfg, device="cpu")
    assert tl.drop_last and len(tl) == len(train) // 100
    assert vl.batch_size == 128 and not vl.drop_last
    xb, yb = next(iter(tl))
    assert xb.shape == (100, 3, 32, 32) and yb.dtype == torch.int64
    assert not tl.pin_memory
    # shuffling is seeded: same seed -> same order, other seed -> other order
    first = next(iter(build_loaders(train, val, cfg, seed=7)[0]))[1]
    again = next(iter(build_loaders(train, val, cfg, seed=7)[0]))[1]
    other = next(iter(build_loaders(train, val, cfg, seed=8)[0]))[1]
    assert torch.equal(first, again) and not torch.equal(first, other)
    # a training set no larger than one batch keeps its last batch
    small = DataConfig(batch_size=4096, eval_batch_size=50)
    tl, vl = build_loaders(train, val, small)
    assert not tl.drop_last and len(tl) == 1 and vl.batch_size == 50


def test_loader_with_worker():
    cfg = DataConfig(batch_size=32, data_fraction=0.1, num_workers=1)
    train, val, _ = build_datasets(cfg)
    tl, vl = build_loaders(train, val, cfg)
    assert tl.persistent_workers and tl.num_workers == 1
    xb, yb = next(iter(tl))
    assert xb.shape == (32, 3, 32, 32)
    del tl, vl


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"data_fraction": 0.0}, "data_fraction"),
        ({"data_fraction": 1.5}, "data_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"image_size": 0}, "image_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"split": "train"}, "split"),
        ({"dataset": "imagefolder"}, "data_dir"),
        ({"dataset": "cifar-1O"}, "cifar10"),
    ],
)
def test_invalid_config(kwargs, match):
    with pytest.raises(TrainerError, match=match):
        DataConfig(**kwargs)


def test_dataset_names_case_insensitive_and_listed():
    assert DataConfig(dataset="CIFAR10").dataset == "cifar10"
    assert DataConfig(dataset="Fashion-MNIST").dataset == "fashionmnist"
    expected = {"digits", "digits-source", "digits-target", "imagefolder", "cifar10", "svhn"}
    assert expected <= set(list_datasets())


def test_missing_torchvision_dataset_is_clear_error(tmp_path):
    with pytest.raises(TrainerError, match="download"):
        build_datasets(DataConfig(dataset="cifar10", data_dir=str(tmp_path)))
    with pytest.raises(TrainerError, match="data_dir"):
        build_datasets(DataConfig(dataset="mnist"))
    assert not any(tmp_path.iterdir()), "nothing may be downloaded without download=True"


def _write_folder(root: Path, classes=("cat", "dog", "owl"), per_class=6, size=(20, 14)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i}.png")


def test_imagefolder_train_val(tmp_path):
    _write_folder(tmp_path / "train")
    _write_folder(tmp_path / "val", per_class=2)
    cfg = DataConfig(dataset="imagefolder", data_dir=str(tmp_path), image_size=16)
    aug = build_train_transform({"data-augmentation": "random-augment"})
    train, val, n = build_datasets(cfg, train_transform=aug)
    assert n == 3 and len(train) == 18 and len(val) == 6
    x, y = train[0]
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32 and y == 0
    assert val.classes == ["cat", "dog", "owl"]
    half_cfg = DataConfig(dataset="imagefolder", data_dir=str(tmp_path), data_fraction=0.5)
    half, _, _ = build_datasets(half_cfg)
    assert len(half) == 9 and set(half.targets) == {0, 1, 2}


def test_imagefolder_single_folder_split(tmp_path):
    _write_folder(tmp_path, per_class=10)
    cfg = DataConfig(dataset="imagefolder", data_dir=str(tmp_path), image_size=12, val_fraction=0.3)
    train, val, n = build_datasets(cfg)
    assert n == 3 and len(train) == 21 and len(val) == 9
    assert Counter(val.targets) == {0: 3, 1: 3, 2: 3}
    assert not set(train.indices) & set(val.indices)
    assert val[0][0].shape == (3, 12, 12)
    with pytest.raises(TrainerError, match="does not exist"):
        build_datasets(DataConfig(dataset="imagefolder", data_dir=str(tmp_path / "nope")))


def test_resolve_data_config():
    import timm

    mean, std, size = resolve_data_config(timm.create_model("test_resnet", pretrained=False))
    assert mean == (0.5, 0.5, 0.5) and std == (0.5, 0.5, 0.5) and size == (3, 160, 160)
    mean, std, size = resolve_data_config(torch.nn.Linear(2, 2))
    assert len(mean) == 3 and size[0] == 3
