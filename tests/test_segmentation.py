"""Segmentation: synthetic set, VOC and COCO folders, head, mIoU, mask-aware augmentation, the
``nas`` trainer with ``task: segmentation`` and its validation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spaces.library import get_space
from trainers.api import LocalContext
from trainers.errors import TrainerError
from trainers.nas import augment_ops as A
from trainers.nas import build_model
from trainers.nas.metrics import background_baseline, segmentation_metric
from trainers.nas.segmentation_data import (
    IGNORE_INDEX,
    CocoSegmentation,
    SyntheticShapesSegmentation,
    VocSegmentation,
    segmentation_datasets,
)
from trainers.nas.settings import NasTrainConfig
from trainers.nas.train import train
from nas_for_tests import shallow_mnasnet

torch.set_num_threads(2)


def tiny_mnasnet(**run) -> dict:
    """A narrow, shallow MnasNet with fast segmentation run settings."""
    cfg = shallow_mnasnet()
    cfg.update({"arch": "mnasnet", "task": "segmentation", "width_scale": 0.25,
                "image_size": 32, "batch_size": 4, "num_train_images": 8, "num_val_images": 4,
                "optimizer": "adamw", "lr": 3e-3, "head_convs": 1, "head_filters": 16,
                "checkpoint_every": 0, "latency_warmup": 0, "latency_repeats": 1})
    cfg.update(run)
    return cfg


def test_synthetic_set_shapes_determinism_and_agreement_with_detection_scenes():
    a, b = SyntheticShapesSegmentation(4, 32, seed=1), SyntheticShapesSegmentation(4, 32, seed=1)
    image, mask = a[2]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert mask.shape == (32, 32) and mask.dtype == torch.int64
    assert torch.equal(image, b[2][0]) and torch.equal(mask, b[2][1])
    assert not torch.equal(mask, SyntheticShapesSegmentation(4, 32, seed=2)[2][1])
    assert a.num_classes == 5 and a.classes[0] == "background"
    assert 0 < int((mask > 0).sum()) < mask.numel() and int(mask.max()) <= 4
    scene = a.shapes.scene(2)  # the detection scene: labels + 1 are the visible mask classes
    assert set(torch.unique(mask).tolist()) - {0} <= {int(x) + 1 for x in scene.labels}


def _palette_png(path, array: np.ndarray) -> None:
    img = Image.fromarray(array.astype(np.uint8), mode="P")
    img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [255, 255, 255] * 253)
    img.save(path)


def test_voc_folder(tmp_path):
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / d).mkdir(parents=True)
    for i, split in enumerate(("train", "val")):
        Image.new("RGB", (40, 20), (200, 10, 10)).save(tmp_path / f"JPEGImages/im{i}.jpg")
        mask = np.zeros((20, 40), np.uint8)
        mask[5:15, 0:20] = 1 + i
        mask[0, :] = IGNORE_INDEX
        _palette_png(tmp_path / f"SegmentationClass/im{i}.png", mask)
        (tmp_path / f"ImageSets/Segmentation/{split}.txt").write_text(f"im{i}\n")
    ds = VocSegmentation(tmp_path, "train")
    image, mask = ds[0]
    assert image.shape == (3, 20, 40) and mask.shape == (20, 40) and ds.num_classes == 2
    assert int(mask[10, 5]) == 1 and int(mask[18, 30]) == 0 and int(mask[0, 3]) == IGNORE_INDEX
    train_ds, val_ds, n = segmentation_datasets("voc", 16, data_dir=tmp_path)
    assert n == 3 and train_ds[0][1].shape == (16, 16) and int(val_ds[0][1][8, 2]) == 2
    with pytest.raises(TrainerError, match="split file"):
        VocSegmentation(tmp_path, "test")


def _coco_folder(root, split: str) -> None:
    (root / split).mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    Image.new("RGB", (30, 20)).save(root / split / "a.png")
    rle = np.zeros((20, 30), bool)
    rle[0:4, 0:30] = True  # a crowd band along the top, as uncompressed column-major RLE
    flat = rle.T.reshape(-1)
    change = np.flatnonzero(np.diff(flat.astype(int))) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    anns = [
        {"id": 1, "image_id": 7, "category_id": 5, "area": 100.0, "iscrowd": 0,
         "segmentation": [[10, 10, 20, 10, 20, 18, 10, 18]]},  # rectangle x 10..20, y 10..18
        {"id": 2, "image_id": 7, "category_id": 9, "area": 20.0, "iscrowd": 0,
         "segmentation": [[12, 12, 15, 12, 15, 15, 12, 15]]},  # small square on top of it
        {"id": 3, "image_id": 7, "category_id": 5, "area": 120.0, "iscrowd": 1,
         "segmentation": {"size": [20, 30], "counts": [0] + counts if flat[0] else counts}},
    ]
    data = {"images": [{"id": 7, "file_name": "a.png", "width": 30, "height": 20}],
            "categories": [{"id": 9, "name": "dog"}, {"id": 5, "name": "cat"}],
            "annotations": anns}
    (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(data))


def test_coco_folder_rasterises_polygons_and_rle(tmp_path):
    for split in ("train", "val"):
        _coco_folder(tmp_path, split)
    ds = CocoSegmentation(tmp_path / "train", tmp_path / "annotations/instances_train.json")
    assert ds.classes == ("background", "cat", "dog") and ds.num_classes == 3
    image, mask = ds[0]
    assert image.shape == (3, 20, 30) and mask.shape == (20, 30)
    assert int(mask[16, 18]) == 1  # cat polygon
    assert int(mask[13, 13]) == 2  # the smaller dog polygon is painted over the cat
    assert int(mask[19, 2]) == 0 and int(mask[2, 25]) == IGNORE_INDEX  # background, crowd
    _, val_ds, n = segmentation_datasets("coco", 24, data_dir=tmp_path)
    assert n == 3 and val_ds[0][1].shape == (24, 24)


@pytest.mark.parametrize("arch, settings", [
    ("mnasnet", {"width_scale": 0.25}),
    ("spinenet", {"filter_scale": 0.125, "endpoint_filters": 16}),
])
def test_head_output_shape(arch, settings):
    model = build_model(arch, get_space(arch).default(), "segmentation", 5, head_convs=1,
                        head_filters=16, **settings)
    assert model(torch.rand(2, 3, 32, 48)).shape == (2, 5, 32, 48)


def test_miou_and_background_baseline_by_hand():
    target = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, IGNORE_INDEX]]])
    preds = torch.tensor([[[0, 0, 1, 0], [0, 1, 1, 1]]])
    out = segmentation_metric(5).forward(preds, target)
    # background: 3 hits of 5 in the union; class 1: 2 of 4; classes 2-4 occur nowhere
    assert float(out["miou"]) == pytest.approx((3 / 5 + 2 / 4) / 2)
    assert float(out["pixel_acc"]) == pytest.approx(5 / 7)
    baseline = background_baseline([(None, target)], 5)
    assert baseline == pytest.approx((4 / 7 + 0) / 2)


@pytest.mark.parametrize("op", sorted(A.GEOMETRIC_OPS))
def test_mask_follows_its_pixels_under_geometric_ops(op):
    image, mask = SyntheticShapesSegmentation(1, 48, seed=5, max_objects=1)[0]
    image = torch.where(mask.bool(), torch.ones_like(image), torch.zeros_like(image))
    out, out_mask = A.RandAugmentPolicy(1, 6, ops=(op,), seed=0)(image, mask)
    assert out_mask.dtype == mask.dtype and out_mask.shape == mask.shape
    moved_pixels, moved_mask = out[0] > 0.5, out_mask > 0
    assert not torch.equal(out_mask, mask)
    assert (moved_pixels & moved_mask).sum() >= 0.9 * (moved_pixels | moved_mask).sum()


def test_one_training_step_reports_miou_and_baseline(tmp_path):
    ctx = LocalContext(tmp_path / "t", seed=0, max_epochs=1, num_cpus=1, echo=False,
                       tensorboard=False)
    train(tiny_mnasnet(num_ops=1, magnitude=3), ctx)
    (r,) = ctx.results
    assert r["failed"] == 0 and r["metric"] == r["miou"]
    assert 0.0 <= r["miou"] <= 1.0 and 0.0 <= r["pixel_acc"] <= 1.0
    assert 0.0 < r["miou_background_baseline"] < 1.0 and np.isfinite(r["train_loss"])


def test_augmentation_policy_of_a_segmentation_trial_uses_mask_ops():
    policy = A.policy_from_config(tiny_mnasnet(num_ops=2, magnitude=5), seed=0,
                                  task="segmentation")
    from spaces.library.augment import SEGMENTATION_OPS

    assert policy.ops == SEGMENTATION_OPS
    image, mask = SyntheticShapesSegmentation(1, 32, seed=0)[0]
    out, out_mask = policy(image, mask)
    assert out.shape == image.shape and out_mask.shape == mask.shape


def test_invalid_segmentation_settings_are_one_error_before_training(tmp_path):
    from orchestrator.spec import Experiment
    from spaces.errors import ArchtuneError
    from trainers.nas import BUILDERS

    with pytest.raises(TrainerError, match="segmentation task needs one of"):
        NasTrainConfig(task="segmentation", dataset="digits")
    with pytest.raises(TrainerError, match="task"):
        NasTrainConfig(task="keypoints")
    name = "test_classifier_only_builder"
    if name not in BUILDERS:
        BUILDERS.register(name, tasks=("classification",))(lambda *a, **k: None)
    with pytest.raises(TrainerError, match=f"arch '{name}' builds classification, not "
                                           f"'segmentation'; builders for 'segmentation': "):
        NasTrainConfig(arch=name, task="segmentation")
    exp = {"name": "seg", "space": "mnasnet", "trainer": "nas", "metric": "miou", "mode": "max",
           "max_epochs": 1, "storage": str(tmp_path),
           "data": {"arch": "mnasnet", "task": "segmentation", "dataset": "cifar10"}}
    with pytest.raises(ArchtuneError, match="data.dataset.*segmentation task needs"):
        Experiment.from_dict(exp)
    exp["data"]["dataset"] = "voc"
    with pytest.raises(ArchtuneError, match="data_dir"):
        train(tiny_mnasnet(dataset="voc"), LocalContext(tmp_path / "v", echo=False,
                                                        tensorboard=False))
    Experiment.from_dict({**exp, "data": {"arch": "mnasnet", "task": "segmentation"}})

