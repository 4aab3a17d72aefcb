"""Box-aware augmentation ops and RandAugment / AutoAugment policies."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision import tv_tensors

from trainers.errors import TrainerError
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
        A.apply_op("Mixup", img)
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
    with pytest.raises(TrainerError, match=r"probability must be in \[0, 1\], got 1.5"):
        A.AugOp("Solarize", 1.5, 3)


def test_ops_match_space_and_policies_from_sampled_configs():
    from spaces.library import augment as aug_space
    from spaces.library import get_space

    assert set(A.OPS) == set(aug_space.ALL_OPS)
    assert set(aug_space.SEGMENTATION_OPS) <= set(A.OPS) and set(aug_space.DETECTION_OPS) <= set(A.OPS)
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
    with pytest.raises(TrainerError, match="augment must be 'none' or one of randaugment"):
        A.policy_from_config({"augment": "mixup"})


def test_augment_space_sizes():
    from spaces.library import get_space

    ra = get_space("randaugment")
    assert ra.size() == 30
    assert len(list(ra.iter_configs())) == 30
    aa = get_space("autoaugment")
    assert aa.size() == (10 * 11 * 11) ** 10
    assert len(aa) == 30


NEW_PHOTOMETRIC = ["AutoContrast", "Contrast", "Brightness", "Sharpness", "Posterize", "Invert"]


def _mask_image(size=64, box=(20, 24, 36, 40), label=2):
    img, boxes = _box_image(size, box)
    mask = torch.zeros(size, size, dtype=torch.int64)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = label
    return img, boxes, mask


@pytest.mark.parametrize("op", GEOMETRIC)
@pytest.mark.parametrize("magnitude", [4, 10])
def test_geometric_ops_move_masks_with_pixels(op, magnitude):
    for seed in range(3):
        img, boxes, mask = _mask_image()
        out, out_boxes, out_mask = A.apply_op(op, img, boxes, magnitude, random.Random(seed),
                                              mask=mask)
        assert isinstance(out_mask, tv_tensors.Mask) and out_mask.shape == mask.shape
        assert out_mask.dtype == mask.dtype and set(out_mask.unique().tolist()) <= {0, 2}
        fg, labelled = out[0] > 0.5, out_mask.as_subclass(torch.Tensor) == 2
        iou = (fg & labelled).sum().item() / max(1, (fg | labelled).sum().item())
        assert iou >= 0.85, (op, seed, iou)
        if op != "Rotate":  # translation/shear: the label really moved
            assert not torch.equal(labelled, mask == 2)


@pytest.mark.parametrize("op", NEW_PHOTOMETRIC + ["Equalize", "Solarize", "Color"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8])
def test_new_photometric_ops_change_pixels_only(op, dtype):
    g = torch.Generator().manual_seed(0)
    img = torch.rand(3, 32, 32, generator=g) * 0.6 + 0.2
    if dtype == torch.uint8:
        img = (img * 255).to(torch.uint8)
    boxes = torch.tensor([[2.0, 3.0, 20.0, 25.0]])
    mask = torch.zeros(32, 32, dtype=torch.int64)
    mask[3:25, 2:20] = 1
    out, out_boxes, out_mask = A.apply_op(op, img, boxes, 8, random.Random(0), mask=mask)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out_boxes.as_subclass(torch.Tensor), boxes)
    assert torch.equal(out_mask.as_subclass(torch.Tensor), mask)
    assert not torch.equal(out, img), op


def test_photometric_magnitude_semantics():
    img = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.5 + 0.25
    inv, _ = A.apply_op("Invert", img)
    assert torch.allclose(inv, 1 - img)
    same, _ = A.apply_op("Posterize", (img * 255).to(torch.uint8), None, 0)
    assert torch.equal(same, (img * 255).to(torch.uint8))
    post, _ = A.apply_op("Posterize", (img * 255).to(torch.uint8), None, 10)
    assert (post % 16 == 0).all()  # 4 bits kept
    ac, _ = A.apply_op("AutoContrast", img)
    assert ac.amin((1, 2)).allclose(torch.zeros(3)) and ac.amax((1, 2)).allclose(torch.ones(3))
    for op in ("Brightness", "Contrast", "Sharpness"):
        unchanged, _ = A.apply_op(op, img, None, 0, random.Random(0))
        assert torch.allclose(unchanged, img, atol=1e-6), op


def test_policy_moves_segmentation_label_map():
    img, _, mask = _mask_image()
    policy = A.RandAugmentPolicy(2, 10, ops=("TranslateX", "ShearY"), seed=3)
    out, out_mask = policy(img, mask)
    assert type(out_mask) is torch.Tensor and out_mask.shape == mask.shape
    fg, labelled = out[0] > 0.5, out_mask == 2
    assert (fg & labelled).sum() >= 0.85 * (fg | labelled).sum()
    assert not torch.equal(out_mask, mask)


def test_policy_moves_instance_masks_and_drops_them_with_boxes():
    img = torch.zeros(3, 32, 32)
    img[:, 10:20, 0:8] = 1
    masks = torch.zeros(2, 32, 32, dtype=torch.uint8)
    masks[0, 10:20, 0:8] = 1
    masks[1, 4:28, 12:30] = 1
    target = {"boxes": torch.tensor([[0.0, 10.0, 8.0, 20.0], [12.0, 4.0, 30.0, 28.0]]),
              "labels": torch.tensor([1, 2]), "masks": masks}
    dropped = False
    for seed in range(20):
        out, tgt = A.RandAugmentPolicy(1, 10, ops=("TranslateX",), seed=seed)(img, target)
        assert len(tgt["masks"]) == len(tgt["boxes"]) == len(tgt["labels"])
        for m, b in zip(tgt["masks"], tgt["boxes"]):
            ys, xs = torch.nonzero(m, as_tuple=True)
            assert xs.min() >= b[0] - 1 and xs.max() + 1 <= b[2] + 1
        dropped |= len(tgt["boxes"]) == 1
    assert dropped


def test_catalogue_spaces_and_task_op_sets():
    from spaces.library import augment as aug_space
    from spaces.library import get_space
    from spaces.library.registry import SPACES

    assert get_space("efficientnet_v2").params.keys() == get_space("efficientnetv2").params.keys()
    for name in aug_space.RANDAUGMENT_SPACES:
        assert get_space(name).size() == 30
    seg = get_space("autoaugmentation_segmentation")
    assert set(seg.params[aug_space.aa_key(0, 0, "type")].choices) == set(aug_space.SEGMENTATION_OPS)
    det = get_space("autoaugmentation_detection")
    assert set(det.params[aug_space.aa_key(4, 1, "type")].choices) == set(aug_space.DETECTION_OPS)
    assert SPACES.meta("randaugment_segmentation")["ops"] == aug_space.SEGMENTATION_OPS
    p = A.policy_from_config({"num_ops": 2, "magnitude": 4}, task="segmentation")
    assert p.ops == aug_space.SEGMENTATION_OPS
    p = A.policy_from_config({"num_ops": 2, "magnitude": 4}, task="detection")
    assert p.ops == aug_space.DETECTION_OPS
    p = A.policy_from_config({"augment": "randaugment_segmentation", "num_ops": 1, "magnitude": 4})
    assert p.ops == aug_space.SEGMENTATION_OPS
    with pytest.raises(ValueError, match="randaugment_detection"):
        A.policy_from_config({"augment": "randaugment_classification"})
