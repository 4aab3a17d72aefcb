"""Registered builders for the SpineNet and NAS-FPN spaces (``trainers.nas.build_model``).

- ``spinenet``, ``spinenet_v2``, ``spinenet_mbconv``: the sampled scale-permuted backbone.
- ``spinenet_scaling`` / ``spinenet49``: SpineNet-49 (or the searched ``spinenet_base``
  architecture) under the scaling knobs
  (``endpoint_filters``, ``filter_scale``, ``resample_alpha``, ``block_repeats``, ``head_convs``,
  ``head_filters``, ``image_size``).
- ``nasfpn``: timm pyramid (``fpn_backbone``) + NAS-FPN neck (``fpn_filters``, ``fpn_repeats``).

Each returns a ``ClassificationModel``, a RetinaNet (``task="detection"``) or a
``SegmentationModel`` over p3..p5 (``task="segmentation"``).
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from spaces.errors import SpaceError
from spaces.library import nasfpn as nasfpn_space
from spaces.library import spinenet as spinenet_space
from trainers.errors import TrainerError
from trainers.knobs import TASKS
from trainers.nas import register_builder, setting
from trainers.nas.heads import ClassificationModel, SegmentationModel, build_retinanet
from trainers.nas.nasfpn import NASFPN, NASFPNBackbone, TimmPyramid
from trainers.nas.spinenet import SpineNet

__all__ = ["SEGMENTATION_LEVELS", "attach_head", "nasfpn_backbone", "spinenet_backbone"]

SEGMENTATION_LEVELS = ("p3", "p4", "p5")


def attach_head(backbone: nn.Module, config: Mapping[str, Any], task: str, num_classes: int,
                overrides: Mapping[str, Any]) -> nn.Module:
    """Classification, RetinaNet detection or segmentation model around a p3..p7 backbone."""
    if task == "segmentation":
        width = int(backbone.out_channels)
        filters = setting(config, overrides, "head_filters")
        return SegmentationModel(backbone, {k: width for k in SEGMENTATION_LEVELS}, num_classes,
                                 filters=int(filters) if filters is not None else width,
                                 convs=int(setting(config, overrides, "head_convs")))
    if task == "detection":
        return build_retinanet(backbone, num_classes,
                               image_size=int(setting(config, overrides, "image_size")),
                               head_convs=int(setting(config, overrides, "head_convs")),
                               head_filters=setting(config, overrides, "head_filters"),
                               anchor_scale=float(setting(config, overrides, "anchor_scale")))
    return ClassificationModel(backbone, num_classes,
                               drop_rate=float(setting(config, overrides, "drop_rate")))


def spinenet_backbone(specs, config: Mapping[str, Any], overrides: Mapping[str, Any]) -> SpineNet:
    return SpineNet(specs,
                    endpoint_filters=int(setting(config, overrides, "endpoint_filters")),
                    filter_scale=float(setting(config, overrides, "filter_scale")),
                    resample_alpha=float(setting(config, overrides, "resample_alpha")),
                    block_repeats=int(setting(config, overrides, "block_repeats")))


def _family_builder(family: str):
    def build(config: Mapping[str, Any], task: str, num_classes: int, **overrides) -> nn.Module:
        specs = spinenet_space.decode(config, family)
        return attach_head(spinenet_backbone(specs, config, overrides), config, task,
                           num_classes, overrides)

    build.__name__ = f"build_{family}"
    build.__doc__ = f"Builder of the {family!r} space."
    return build


for _family in spinenet_space.FAMILIES:
    register_builder(_family, tasks=TASKS)(_family_builder(_family))


@register_builder("spinenet_scaling", tasks=TASKS)
def build_spinenet_scaling(config: Mapping[str, Any], task: str, num_classes: int,
                           **overrides) -> nn.Module:
    """The ``spinenet_base`` architecture (default SpineNet-49; any searched SpineNet family
    architecture, see ``spaces.library.spinenet.base_specs``) with the scaling knobs read from
    ``config``."""
    try:
        specs = spinenet_space.base_specs(setting(config, overrides, "spinenet_base"))
    except SpaceError as e:
        raise TrainerError(f"spinenet_base: {e}") from None
    backbone = spinenet_backbone(specs, config, overrides)
    return attach_head(backbone, config, task, num_classes, overrides)


register_builder("spinenet49", tasks=TASKS)(build_spinenet_scaling)


def nasfpn_backbone(config: Mapping[str, Any], overrides: Mapping[str, Any]) -> NASFPNBackbone:
    cells = nasfpn_space.decode(config)
    filters = int(setting(config, overrides, "fpn_filters"))
    pyramid = TimmPyramid(str(setting(config, overrides, "fpn_backbone")),
                          pretrained=bool(setting(config, overrides, "pretrained")),
                          extra_filters=filters)
    neck = NASFPN(pyramid.level_channels, cells, filters=filters,
                  repeats=int(setting(config, overrides, "fpn_repeats")))
    return NASFPNBackbone(pyramid, neck)


@register_builder("nasfpn", tasks=TASKS)
def build_nasfpn(config: Mapping[str, Any], task: str, num_classes: int, **overrides
                 ) -> nn.Module:
    """timm pyramid + NAS-FPN neck + head."""
    return attach_head(nasfpn_backbone(config, overrides), config, task, num_classes, overrides)
