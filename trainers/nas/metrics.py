"""Detection evaluation with ``torchmetrics.detection.MeanAveragePrecision`` (COCO mAP,
boxes ``xyxy``). Keys returned: ``map`` (AP@[.5:.95]), ``map_50``, ``map_75``, ``mar_100``;
all floats in [0, 1] (torchmetrics' -1 for "no ground truth" is reported as 0.0).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

__all__ = ["detection_metric", "evaluate_detection"]

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
