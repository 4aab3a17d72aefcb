"""Training augmentations from the Quick-Tune knobs (trainers/augment.py)."""
from __future__ import annotations

import pickle
import random

import pytest
import torch

from trainers.errors import TrainerError
from trainers.augment import (
    AUGMENTATIONS,
    Identity,
    TensorAugment,
    TimmAutoAugment,
    augmentation_kwargs,
    build_train_transform,
)
from trainers.data import load_digits_uint8

torch.set_num_threads(1)

CONFIGS = {
    "auto-augment-v0": {"data-augmentation": "auto-augment", "auto-augment": "v0"},
    "auto-augment-original": {"data-augmentation": "auto-augment", "auto-augment": "original"},
    "random-augment": {"data-augmentation": "random-augment", "ra-num-ops": 2, "ra-magnitude": 9},
    "random-augment-strong": {
        "data-augmentation": "random-augment", "ra-num-ops": 3, "ra-magnitude": 17},
    "trivial-augment": {"data-augmentation": "trivial-augment"},
}


@pytest.fixture(scope="module")
def digit_image() -> torch.Tensor:
    images, labels = load_digits_uint8(32)
    img = images[int((labels == 3).nonzero()[0][0])]  # a real handwritten "3"
    return img.expand(3, -1, -1).contiguous()


def _seed(s: int) -> None:
    torch.manual_seed(s)
    random.seed(s)


@pytest.mark.parametrize("key", list(CONFIGS))
def test_augmentation_changes_pixels_keeps_shape_dtype(key, digit_image):
    config = {**CONFIGS[key], "lr": 0.1, "model": "resnet18"}  # other knobs are ignored
    t = build_train_transform(config, mean=(0.5, 0.5, 0.5))
    original = digit_image.clone()
    changed = 0
    for s in range(12):
        _seed(s)
        out = t(digit_image)
        assert type(out) is torch.Tensor
        assert out.shape == digit_image.shape and out.dtype == torch.uint8
        changed += not torch.equal(out, digit_image)
    assert changed >= 3, f"{key} changed the image for only {changed}/12 seeds"
    assert torch.equal(digit_image, original), "input must not be modified in place"


@pytest.mark.parametrize("key", list(CONFIGS))
def test_augmentation_reproducible_with_seed_and_picklable(key, digit_image):
    t = build_train_transform(CONFIGS[key])
    _seed(123)
    a = t(digit_image)
    _seed(123)
    b = t(digit_image)
    assert torch.equal(a, b)
    t2 = pickle.loads(pickle.dumps(t))  # DataLoader workers may pickle the dataset
    _seed(123)
    assert torch.equal(t2(digit_image), a)


def test_none_and_absent_are_identity(digit_image):
    for cfg in ({}, {"data-augmentation": "none"}, {"data-augmentation": None}):
        t = build_train_transform(cfg)
        assert isinstance(t, Identity)
        assert torch.equal(t(digit_image), digit_image)


def test_kinds_and_parameters():
    t = build_train_transform(CONFIGS["random-augment-strong"])
    assert isinstance(t, TensorAugment)
    assert t.op.num_ops == 3 and t.op.magnitude == 17 and t.op.num_magnitude_bins == 31
    t = build_train_transform(CONFIGS["auto-augment-original"], mean=(0.485, 0.456, 0.406))
    assert isinstance(t, TimmAutoAugment) and t.policy == "original"
    assert t.fill == (124, 116, 104)
    trivial = build_train_transform(CONFIGS["trivial-augment"])
    assert type(trivial.op).__name__ == "TrivialAugmentWide"
    # integral floats (as some searchers emit) are accepted
    t = build_train_transform(
        {"data-augmentation": "random-augment", "ra-num-ops": 2.0, "ra-magnitude": 9.0})
    assert t.op.num_ops == 2 and isinstance(t.op.num_ops, int)


def test_kwargs_defaults_and_children_ignored_when_inactive():
    assert augmentation_kwargs({"data-augmentation": "auto-augment"}) == {
        "name": "auto-augment", "policy": "v0"}
    assert augmentation_kwargs({"data-augmentation": "random-augment"}) == {
        "name": "random-augment", "num_ops": 2, "magnitude": 9}
    assert augmentation_kwargs({"data-augmentation": "trivial-augment", "ra-num-ops": 3}) == {
        "name": "trivial-augment"}
    assert set(AUGMENTATIONS) == {"auto-augment", "random-augment", "trivial-augment", "none"}


@pytest.mark.parametrize("policy", ["v0", "original"])
def test_timm_autoaugment_survives_every_sub_policy(policy, digit_image):
    # v0 asks Pillow to posterize to 0 bits at low magnitude, which Pillow >= 10 rejects
    t = TimmAutoAugment(policy)
    for s in range(300):
        _seed(s)
        out = t(digit_image)
        assert out.shape == digit_image.shape and out.dtype == torch.uint8


def test_posterize_zero_bits_is_black(digit_image):
    from torchvision.transforms.v2 import functional as TF

    from trainers.augment import _posterize_safe

    pil = TF.to_pil_image(digit_image)
    assert TF.pil_to_tensor(_posterize_safe(pil, 0)).max() == 0
    assert torch.equal(TF.pil_to_tensor(_posterize_safe(pil, 8)), digit_image)
    kept = TF.pil_to_tensor(_posterize_safe(pil, 2))
    assert torch.equal(kept, digit_image & 0b11000000)


def test_timm_autoaugment_single_channel_and_small_images():
    images, _ = load_digits_uint8(8)
    t = TimmAutoAugment("v0")
    for s in range(5):
        _seed(s)
        out = t(images[0])
        assert out.shape == (1, 8, 8) and out.dtype == torch.uint8


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"data-augmentation": "randaugment"}, "random-augment"),
        ({"data-augmentation": "auto-augment", "auto-augment": "v1"}, "policy"),
        ({"data-augmentation": "random-augment", "ra-num-ops": 0}, "ra-num-ops"),
        ({"data-augmentation": "random-augment", "ra-magnitude": 31}, "ra-magnitude"),
        ({"data-augmentation": "random-augment", "ra-magnitude": 9.5}, "ra-magnitude"),
    ],
)
def test_invalid_settings_raise_trainer_error(cfg, match):
    with pytest.raises(TrainerError, match=match):
        build_train_transform(cfg)


def test_rejects_float_images():
    t = build_train_transform(CONFIGS["trivial-augment"])
    with pytest.raises(TrainerError, match="uint8"):
        t(torch.zeros(3, 8, 8))
