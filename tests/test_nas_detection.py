"""Detection data (synthetic shapes, COCO format), RetinaNet assembly, metrics, short training."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from trainers.nas import build_model
from trainers.nas.detection_data import (
    CocoFormatDetection,
    SyntheticShapes,
    collate_detection,
    detection_loaders,
)
from trainers.nas.heads import anchor_generator
from trainers.nas.metrics import evaluate_detection

torch.set_num_threads(2)


def test_synthetic_shapes_deterministic_and_valid():
    a, b = SyntheticShapes(8, 64, seed=3), SyntheticShapes(8, 64, seed=3)
    c = SyntheticShapes(8, 64, seed=4)
    for i in range(8):
        (ia, ta), (ib, tb) = a[i], b[i]
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"])
        assert ia.shape == (3, 64, 64) and 0 <= ia.min() and ia.max() <= 1
        boxes = ta["boxes"]
        assert boxes.shape[1] == 4 and len(boxes) == len(ta["labels"]) >= 1
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert boxes.min() >= 0 and boxes.max() <= 64
        assert set(ta["labels"].tolist()) <= {0, 1, 2, 3}
    assert not torch.equal(a[0][0], c[0][0])
    with pytest.raises(IndexError):
        a[8]


def test_synthetic_shapes_spread_sizes_classes_and_bounded_occlusion():
    from trainers.nas.synthetic_shapes import draw_scene, shape_mask

    ds = SyntheticShapes(200, 128, seed=0)
    sides, labels, colours = [], [], {c: [] for c in range(4)}
    for i in range(200):
        sc = ds.scene(i)
        for box, label in zip(sc.boxes, sc.labels):
            sides.append(float(np.sqrt((box[2] - box[0]) * (box[3] - box[1]))))
            labels.append(int(label))
            full = shape_mask(int(label), tuple(box), 128)
            visible = full & (sc.label_map == label + 1)
            assert visible.sum() >= 0.65 * full.sum()  # at most 30 % hidden (+ rounding)
            colours[int(label)].append(sc.image[:, visible].mean(1))
    sides = np.asarray(sides)
    assert sides.min() < 22 and sides.max() > 60  # objects span strides 8..32 (and beyond)
    assert set(labels) == {0, 1, 2, 3}
    means = np.stack([np.mean(colours[c], 0) for c in range(4)])
    assert np.ptp(means, axis=0).max() < 0.1  # colour does not tell the class
    again = draw_scene(0, 5, 128)
    assert np.array_equal(again.label_map, ds.scene(5).label_map)


def test_coco_format_dataset(tmp_path):
    from PIL import Image

    (tmp_path / "img").mkdir()
    images, anns = [], []
    for i in range(2):
        Image.fromarray(np.full((40, 50, 3), 30 * i, np.uint8)).save(tmp_path / f"img/{i}.png")
        images.append({"id": 10 + i, "file_name": f"{i}.png", "width": 50, "height": 40})
        anns.append({"id": i + 1, "image_id": 10 + i, "category_id": 7 if i else 3,
                     "bbox": [5, 6, 20, 10], "area": 200, "iscrowd": 0})
    ann_file = tmp_path / "ann.json"
    ann_file.write_text(json.dumps({"images": images, "annotations": anns, "categories": [
        {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]}))
    ds = CocoFormatDetection(tmp_path / "img", ann_file)
    assert len(ds) == 2 and ds.num_classes == 2 and ds.classes == ("cat", "dog")
    img, tgt = ds[1]
    assert img.dtype == torch.float32 and img.shape == (3, 40, 50)
    assert tgt["boxes"].tolist() == [[5.0, 6.0, 25.0, 16.0]]  # xywh -> xyxy
    assert tgt["labels"].tolist() == [1] and int(tgt["image_id"]) == 11
    images_b, targets_b = collate_detection([ds[0], ds[1]])
    assert len(images_b) == 2 and len(targets_b) == 2
    with pytest.raises(FileNotFoundError):
        CocoFormatDetection(tmp_path / "img", tmp_path / "missing.json")


def test_anchor_generator_five_levels():
    gen = anchor_generator(4.0)
    assert gen.num_anchors_per_location() == [9] * 5
    assert gen.sizes[0][0] == 32.0 and gen.sizes[-1][0] == 512.0


TINY = dict(fpn_filters=32, fpn_repeats=1, fpn_backbone="test_resnet", head_convs=2,
            head_filters=32, image_size=64, anchor_scale=2.0)


def test_retinanet_outputs_and_metric():
    from spaces.library.nasfpn import nasfpn_space

    cfg = {**nasfpn_space().default(), **TINY}
    model = build_model("nasfpn", cfg, "detection", num_classes=4)
    assert model.backbone.out_channels == 32
    loader = torch.utils.data.DataLoader(SyntheticShapes(4, 64, seed=1), batch_size=2,
                                         collate_fn=collate_detection)
    images, targets = next(iter(loader))
    losses = model(images, targets)
    assert set(losses) == {"classification", "bbox_regression"}
    sum(losses.values()).backward()
    res = evaluate_detection(model, loader)
    assert set(res) == {"map", "map_50", "map_75", "mar_100"}
    assert all(0.0 <= v <= 1.0 for v in res.values())


def test_short_training_improves():
    from spaces.library.nasfpn import nasfpn_space

    torch.manual_seed(0)
    cfg = {**nasfpn_space().default(), **TINY}
    model = build_model("nasfpn", cfg, "detection", num_classes=4)
    train, val, k = detection_loaders("synthetic", batch_size=8, image_size=64, num_train=40,
                                      num_val=16, seed=0)
    assert k == 4
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    epoch_losses = []
    for _ in range(3):
        model.train()
        total, n = 0.0, 0
        for images, targets in train:
            loss = sum(model(images, targets).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, n = total + loss.item(), n + 1
        epoch_losses.append(total / n)
    assert all(np.isfinite(epoch_losses))
    # loss falls over the first epochs (focal + L1 box loss, mean per epoch)
    assert epoch_losses[-1] < 0.95 * epoch_losses[0], epoch_losses
    assert min(epoch_losses[1:]) < epoch_losses[0]
    res = evaluate_detection(model, val)
    assert 0.0 <= res["map_50"] <= 1.0


def test_retinanet_head_is_normalised_with_giou_box_loss():
    from spaces.library.spinenet import SPINENET49_BLOCK_SPECS
    from trainers.nas.heads import build_retinanet
    from trainers.nas.spinenet import SpineNet

    backbone = SpineNet(SPINENET49_BLOCK_SPECS, endpoint_filters=16, filter_scale=0.125)
    det = build_retinanet(backbone, 3, image_size=64, head_convs=3, head_filters=24)
    for tower in (det.head.classification_head.conv, det.head.regression_head.conv):
        assert len(tower) == 3
        assert all(isinstance(layer[1], torch.nn.GroupNorm) for layer in tower)
    assert det.head.regression_head._loss_type == "giou"
    assert det.detections_per_img == 100
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 40.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[10.0, 20.0, 60.0, 50.0]]), "labels": torch.tensor([2])}]
    losses = det(images, targets)
    assert 0.0 < float(losses["bbox_regression"]) <= 2.0  # GIoU loss is bounded by 2
