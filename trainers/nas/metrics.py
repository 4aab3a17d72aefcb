"""Evaluation of the ``nas`` trainer's detection and segmentation models.

Detection: ``torchmetrics.detection.MeanAveragePrecision`` (COCO mAP, boxes ``xyxy``). Keys
returned: ``map`` (AP@[.5:.95]), ``map_50``, ``map_75``, ``mar_100``; all floats in [0, 1]
(torchmetrics' -1 for "no ground truth" is reported as 0.0).

Segmentation: ``miou`` (``MulticlassJaccardIndex``, macro: the mean IoU over the classes that
occur in the targets or the predictions, background included) and ``pixel_acc``
(``MulticlassAccuracy``, micro); pixels labelled ``ignore_index`` are not scored.
``miou_background_baseline`` is the ``miou`` of predicting background everywhere.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from trainers.nas.segmentation_data import IGNORE_INDEX

__all__ = ["background_baseline", "detection_metric", "evaluate_detection",
           "evaluate_segmentation", "segmentation_metric"]

REPORTED = ("map", "map_50", "map_75", "mar_100")


def detection_metric():
    """A fresh ``MeanAveragePrecision(box_format="xyxy", iou_type="bbox")``."""
    from torchmetrics.detection import MeanAveragePrecision

    return MeanAveragePrecision(box_format="xyxy", iou_type="bbox")


@torch.no_grad()
def evaluate_detection(model: nn.Module, loader: Iterable, device: str | torch.device = "cpu",
                       max_batches: int | None = None) -> dict[str, float]:
    """COCO-style mAP of a torchvision detector over ``loader`` (lists of images/targets)."""
    was_training = model.training
    model.eval()
    metric = detection_metric()
    for b, (images, targets) in enumerate(loader):
        if max_batches is not None and b >= max_batches:
            break
        preds = model([im.to(device) for im in images])
        metric.update([{k: v.detach().cpu() for k, v in p.items()} for p in preds],
                      [{"boxes": t["boxes"].cpu(), "labels": t["labels"].cpu()} for t in targets])
    res = metric.compute()
    model.train(was_training)
    return {k: max(0.0, float(res[k])) for k in REPORTED}


def segmentation_metric(num_classes: int, ignore_index: int = IGNORE_INDEX):
    """A fresh ``MetricCollection`` of ``miou`` and ``pixel_acc`` over ``(B, H, W)`` class maps."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    return MetricCollection({
        "miou": MulticlassJaccardIndex(num_classes, average="macro", ignore_index=ignore_index),
        "pixel_acc": MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index),
    })


def background_baseline(loader: Iterable, num_classes: int,
                        ignore_index: int = IGNORE_INDEX) -> float:
    """``miou`` of predicting class 0 (background) for every pixel of ``loader``'s masks."""
    metric = segmentation_metric(num_classes, ignore_index)
    for _, masks in loader:
        metric.update(torch.zeros_like(masks), masks)
    return float(metric.compute()["miou"])


@torch.no_grad()
def evaluate_segmentation(model: nn.Module, loader: Iterable, num_classes: int,
                          device: str | torch.device = "cpu",
                          ignore_index: int = IGNORE_INDEX) -> dict[str, float]:
    """``miou``, ``pixel_acc`` and ``val_loss`` (cross-entropy per scored pixel) of a model
    returning ``(B, num_classes, H, W)`` logits over ``loader``'s ``(images, masks)`` batches."""
    was_training = model.training
    model.eval()
    metric = segmentation_metric(num_classes, ignore_index)
    loss_sum, pixels = 0.0, 0
    for images, masks in loader:
        logits = model(images.to(device)).float()
        masks = masks.to(device)
        loss_sum += float(nn.functional.cross_entropy(logits, masks, ignore_index=ignore_index,
                                                      reduction="sum"))
        pixels += int((masks != ignore_index).sum())
        metric.update(logits.argmax(1).cpu(), masks.cpu())
    out = {k: float(v) for k, v in metric.compute().items()}
    model.train(was_training)
    out["val_loss"] = loss_sum / max(1, pixels)
    return out
