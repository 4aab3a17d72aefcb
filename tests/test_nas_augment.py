"""Box-aware augmentation ops and RandAugment / AutoAugment policies."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from trainers.nas import augment_ops as A

GEOMETRIC = ["TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate"]


def _box_image(size=64, box=(20, 24, 36, 40), channels=3):
    img = torch.zeros(channels, size, size)
    x0, y0, x1, y1 = box
    img[:, y0:y1, x0:x1] = 1.0
    return img, torch.tensor([list(map(float, box))])


@pytest.mark.parametrize("op", GEOMETRIC)
@pytest.mark.parametrize("magnitude", [3, 10])
def test_geometric_ops_keep_pixels_inside_transformed_box(op, magnitude):
    for seed in range(4):
        img, boxes = _box_image()
        out, out_boxes = A.apply_op(op, img, boxes, magnitude, random.Random(seed))
        assert out.shape == img.shape
        assert isinstance(out_boxes, tv_tensors.BoundingBoxes) and out_boxes.shape == (1, 4)
        mass = out[0].sum().item()
        assert mass > 0.5 * img[0].sum().item()  # the box stays (mostly) in frame at 64 px
        x0, y0, x1, y1 = out_boxes[0].tolist()
        tol = 1.5
        ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
        inside = (xs >= x0 - tol) & (xs <= x1 + tol) & (ys >= y0 - tol) & (ys <= y1 + tol)
        assert out[0][inside].sum().item() >= 0.99 * mass, (op, seed, out_boxes)
        # and the box is not absurdly loose: pixel mass covers a fair share of its area
        assert mass >= 0.3 * (x1 - x0) * (y1 - y0)


def test_translate_moves_box_by_scaled_amount():
    img, boxes = _box_image(size=64)
    _, out_boxes = A.apply_op("TranslateX", img, boxes, 10, random.Random(0))
    shift = out_boxes[0, 0].item() - boxes[0, 0].item()
    assert abs(abs(shift) - 250 * 64 / 640) < 1e-4
    assert out_boxes[0, 1].item() == pytest.approx(boxes[0, 1].item())


def test_zero_magnitude_geometric_is_identity():
    img, boxes = _box_image()
    for op in GEOMETRIC:
        out, out_boxes = A.apply_op(op, img, boxes, 0, random.Random(1))
        assert torch.allclose(out, img)
        assert torch.allclose(out_boxes.as_subclass(torch.Tensor), boxes)


@pytest.mark.parametrize("op", ["Equalize", "Solarize", "Color", "Cutout", "SolarizeAdd"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_photometric_ops_keep_boxes_shape_dtype(op, dtype):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 32, 32, generator=g)
    if dtype == torch.uint8:
        img = (img * 255).to(torch.uint8)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 25.0]])
    out, out_boxes = A.apply_op(op, img, boxes, 7, random.Random(0))
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out_boxes.as_subclass(torch.Tensor), boxes)
    if op in ("Solarize", "Cutout", "SolarizeAdd", "Color"):
        assert not torch.equal(out, img)


def test_unknown_op_and_bad_magnitude():
    img = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match="unknown augmentation op"):
        A.apply_op("Posterize", img)
    with pytest.raises(ValueError, match="magnitude"):
        A.apply_op("Rotate", img, None, 11)


def test_policy_drops_boxes_pushed_out_with_their_labels():
    dropped = False
    for seed in range(20):
        img = torch.zeros(3, 32, 32)
        img[:, 10:20, 0:8] = 1
        target = {"boxes": torch.tensor([[0.0, 10.0, 8.0, 20.0], [12.0, 4.0, 30.0, 28.0]]),
                  "labels": torch.tensor([1, 2])}
        policy = A.RandAugmentPolicy(1, 10, ops=("TranslateX",), seed=seed)
        out, tgt = policy(img, target)
        assert len(tgt["boxes"]) == len(tgt["labels"])
        assert isinstance(tgt["boxes"], torch.Tensor) and not isinstance(tgt["boxes"], tv_tensors.BoundingBoxes)
        if len(tgt["boxes"]) == 1:
            dropped = True
            assert tgt["labels"].tolist() == [2]
        assert (tgt["boxes"] >= 0).all() and (tgt["boxes"][:, 2] <= 32).all()
    assert dropped


def test_policy_image_only_call():
    policy = A.RandAugmentPolicy(3, 5, seed=0)
    out = policy(torch.rand(1, 16, 16))
    assert out.shape == (1, 16, 16)


def test_randaugment_deterministic_with_seed():
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    a = A.RandAugmentPolicy(2, 9, seed=5)
    b = A.RandAugmentPolicy(2, 9, seed=5)
    for _ in range(5):
        assert torch.equal(a(img), b(img))


def test_autoaugment_probabilities():
    img = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    never = A.AutoAugmentPolicy([[("Rotate", 0.0, 10), ("Solarize", 0.0, 10)]], seed=0)
    assert torch.equal(never(img), img)
    always = A.AutoAugmentPolicy([[A.AugOp("Solarize", 1.0, 10)]], seed=0)
    assert not torch.equal(always(img), img)
    with pytest.raises(ValueError):
        A.AugOp("Solarize", 1.5, 3)


def test_ops_match_space_and_policies_from_sampled_configs():
    from spaces.library import augment as aug_space
    from spaces.library import get_space

    assert A.OPS == aug_space.AUGMENT_OPS
    rng = np.random.default_rng(0)
    ra = get_space("randaugment")
    for cfg in ra.sample(rng, n=5):
        p = A.policy_from_config(cfg, seed=0)
        assert isinstance(p, A.RandAugmentPolicy) and p.num_ops == cfg["num_ops"]
    aa = get_space("autoaugment")
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    target = {"boxes": torch.tensor([[4.0, 4.0, 20.0, 20.0]]), "labels": torch.tensor([0])}
    for cfg in aa.sample(rng, n=5):
        p = A.policy_from_config(cfg, seed=1)
        assert isinstance(p, A.AutoAugmentPolicy) and len(p.sub_policies) == 5
        out, tgt = p(img, target)
        assert out.shape == img.shape and len(tgt["boxes"]) == len(tgt["labels"])
    assert A.policy_from_config({"lr": 0.1}) is None
    assert A.policy_from_config({"augment": "none", "num_ops": 2, "magnitude": 3}) is None
    with pytest.raises(ValueError):
        A.policy_from_config({"augment": "mixup"})


def test_augment_space_sizes():
    from spaces.library import get_space

    ra = get_space("randaugment")
    assert ra.size() == 30
    assert len(list(ra.iter_configs())) == 30
    aa = get_space("autoaugment")
    assert aa.size() == (10 * 11 * 11) ** 10
    assert len(aa) == 30
