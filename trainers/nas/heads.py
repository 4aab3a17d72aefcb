"""Task heads on top of multi-level backbones (modules returning ``OrderedDict`` p3..p7 and
having ``out_channels``).

- :class:`ClassificationModel`: global-average-pools the chosen levels (default p5..p7),
  concatenates them, dropout, linear.
- :func:`build_retinanet`: torchvision ``RetinaNet`` with the backbone as its backbone module,
  an ``AnchorGenerator`` for the 5 levels (3 scales x 3 aspect ratios, base size
  ``anchor_scale * stride``) and a head whose conv towers have ``head_convs`` layers of
  ``head_filters`` channels, each conv -> GroupNorm -> ReLU (as torchvision's RetinaNet v2), and
  a GIoU box loss (v2); at most 100 detections per image.
- :class:`SegmentationModel`: normalises the image, runs the backbone and a light
  :class:`SegmentationHead` (FPN-style fuse of a few levels to the finest one, conv tower, 1x1
  classifier) and upsamples the logits bilinearly to the input size.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn
from torch.nn import functional as F
from torchvision.models.detection import RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.misc import Conv2dNormActivation

from trainers.errors import TrainerError

__all__ = ["ClassificationModel", "SegmentationHead", "SegmentationModel", "anchor_generator",
           "build_retinanet", "retinanet_head"]

LEVEL_STRIDES: dict[str, int] = {"p3": 8, "p4": 16, "p5": 32, "p6": 64, "p7": 128}


class ClassificationModel(nn.Module):
    """Backbone -> pooled ``levels`` -> concat -> dropout -> linear logits."""

    def __init__(self, backbone: nn.Module, num_classes: int,
                 levels: Sequence[str] = ("p5", "p6", "p7"), drop_rate: float = 0.0):
        super().__init__()
        if num_classes < 1:
            raise TrainerError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        self.levels = tuple(levels)
        self.num_classes = num_classes
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(backbone.out_channels * len(self.levels), num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)
        return torch.cat([feats[k].mean((2, 3)) for k in self.levels], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.forward_features(x)))


def anchor_generator(anchor_scale: float = 4.0, strides: Sequence[int] = (8, 16, 32, 64, 128),
                     aspect_ratios: Sequence[float] = (0.5, 1.0, 2.0)) -> AnchorGenerator:
    """RetinaNet anchors: per level sizes ``anchor_scale * stride * 2**(i/3)``, i = 0, 1, 2."""
    sizes = tuple(tuple(float(anchor_scale * s * 2 ** (i / 3)) for i in range(3)) for s in strides)
    return AnchorGenerator(sizes, (tuple(aspect_ratios),) * len(strides))


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the most groups of (32, 16, 8, 4, 2) that leave >= 2 channels each."""
    groups = next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels >= 2 * g), 1)
    return nn.GroupNorm(groups, channels)


def _tower(in_channels: int, filters: int, convs: int) -> nn.Sequential:
    layers = []
    ch = in_channels
    for _ in range(convs):
        layers.append(Conv2dNormActivation(ch, filters, norm_layer=_group_norm))
        ch = filters
    tower = nn.Sequential(*layers)
    for m in tower.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return tower


def retinanet_head(in_channels: int, num_anchors: int, num_classes: int, head_convs: int = 4,
                   head_filters: int | None = None, prior_probability: float = 0.01
                   ) -> RetinaNetHead:
    """torchvision's RetinaNetHead with conv towers of ``head_convs`` x ``head_filters``."""
    head = RetinaNetHead(in_channels, num_anchors, num_classes)
    head.regression_head._loss_type = "giou"
    filters = head_filters or in_channels
    cls, reg = head.classification_head, head.regression_head
    cls.conv = _tower(in_channels, filters, head_convs)
    cls.cls_logits = nn.Conv2d(filters, num_anchors * num_classes, 3, padding=1)
    nn.init.normal_(cls.cls_logits.weight, std=0.01)
    nn.init.constant_(cls.cls_logits.bias, -math.log((1 - prior_probability) / prior_probability))
    reg.conv = _tower(in_channels, filters, head_convs)
    reg.bbox_reg = nn.Conv2d(filters, num_anchors * 4, 3, padding=1)
    nn.init.normal_(reg.bbox_reg.weight, std=0.01)
    nn.init.zeros_(reg.bbox_reg.bias)
    return head


def build_retinanet(backbone: nn.Module, num_classes: int, image_size: int = 640,
                    min_size: int | None = None, max_size: int | None = None,
                    head_convs: int = 4, head_filters: int | None = None,
                    anchor_scale: float = 4.0, **kwargs) -> RetinaNet:
    """RetinaNet over a 5-level backbone (p3..p7, ``backbone.out_channels`` wide).

    Labels are ``0..num_classes-1`` (sigmoid focal loss: no background class). Images are
    resized by torchvision's transform to ``min_size``/``max_size`` (default ``image_size``).
    ``kwargs`` go to ``RetinaNet`` (e.g. ``score_thresh``, ``detections_per_img``).
    """
    if not hasattr(backbone, "out_channels"):
        raise TrainerError("detection backbone must expose .out_channels")
    kwargs.setdefault("detections_per_img", 100)
    anchors = anchor_generator(anchor_scale)
    head = retinanet_head(backbone.out_channels, anchors.num_anchors_per_location()[0],
                          num_classes, head_convs, head_filters)
    return RetinaNet(backbone, num_classes, min_size=min_size or image_size,
                     max_size=max_size or image_size, anchor_generator=anchors, head=head,
                     **kwargs)


class SegmentationHead(nn.Module):
    """Light semantic-segmentation head over named feature levels.

    Each level in ``in_channels`` (name -> width) goes through a 1x1 conv to ``filters``, is
    upsampled bilinearly to the first (finest) level's size and summed; then ``convs`` 3x3
    conv -> GroupNorm -> ReLU layers and a 1x1 classifier give ``num_classes`` logits at the
    finest level's resolution.
    """

    def __init__(self, in_channels: Mapping[str, int], num_classes: int, filters: int = 64,
                 convs: int = 1):
        super().__init__()
        if not in_channels:
            raise TrainerError("segmentation head needs at least one feature level")
        if num_classes < 2:
            raise TrainerError(f"segmentation needs num_classes >= 2 (background included), "
                               f"got {num_classes}")
        self.levels = tuple(in_channels)
        self.lateral = nn.ModuleDict({k: nn.Conv2d(int(c), filters, 1)
                                      for k, c in in_channels.items()})
        self.tower = _tower(filters, filters, convs) if convs > 0 else nn.Identity()
        self.classifier = nn.Conv2d(filters, num_classes, 1)

    def forward(self, feats: Mapping[str, torch.Tensor]) -> torch.Tensor:
        size = feats[self.levels[0]].shape[-2:]
        fused = self.lateral[self.levels[0]](feats[self.levels[0]])
        for k in self.levels[1:]:
            fused = fused + F.interpolate(self.lateral[k](feats[k]), size=size, mode="bilinear",
                                          align_corners=False)
        return self.classifier(self.tower(fused))


class SegmentationModel(nn.Module):
    """``image (B, 3, H, W) in [0, 1] -> logits (B, num_classes, H, W)``.

    The image is normalised with the ImageNet mean/std (so augmentation runs on raw pixels),
    ``backbone(x)`` must return a mapping holding every key of ``in_channels``; the head's
    logits are upsampled bilinearly to ``H x W``. Class 0 is the background.
    """

    def __init__(self, backbone: nn.Module, in_channels: Mapping[str, int], num_classes: int,
                 filters: int = 64, convs: int = 1):
        super().__init__()
        self.backbone = backbone
        self.num_classes = int(num_classes)
        self.head = SegmentationHead(in_channels, self.num_classes, filters, convs)
        self.register_buffer("mean", torch.tensor(IMAGENET_DEFAULT_MEAN).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_DEFAULT_STD).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.backbone((x - self.mean) / self.std))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
