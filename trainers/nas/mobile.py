"""MnasNet and EfficientNetV2 networks built from per-block architecture choices.

A :class:`MobileBackbone` is ``stem conv (3x3, stride 2) -> searched blocks -> head conv (1x1)``.
Each searched block is a stage of ``repeats`` identical layers (the first one carries the stride
and the width change), decoded from the configuration by ``spaces.library.mnasnet.decode`` /
``spaces.library.efficientnetv2.decode``, which read parameters through
:class:`spaces.tree.ArchConfig` so unused ones (expansion/SE of a ``conv`` block) stay out of the
architecture id.

Layer ops (from :mod:`trainers.nas.blocks`):

- ``conv``: a regular ``k x k`` conv-BN-act layer, with an identity skip when stride is 1 and the
  width does not change (MnasNet's "regular conv" op);
- ``mbconv``: :class:`~trainers.nas.blocks.MBConvBlock` (expand, depthwise, SE, project);
- ``fused_mbconv``: :class:`~trainers.nas.blocks.FusedMBConvBlock`.

Widths are ``make_divisible(reference * width * width_scale, 8)``; ``width_scale`` (and, for
EfficientNetV2, ``depth_scale``) shrink the network for proxy tasks. The stem and head convs are
scaled by ``width_scale`` as well.

Heads: classification uses :class:`trainers.nas.heads.ClassificationModel` on the pooled head
conv; detection puts a feature pyramid (levels 3-5 plus P6/P7) under
:func:`trainers.nas.heads.build_retinanet` (:func:`build_mobile_detector`); segmentation fuses
the stage outputs of levels 2-5 (strides 4-32) in :class:`trainers.nas.heads.SegmentationModel`
(:func:`build_mobile_segmenter`).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelP6P7

from trainers.errors import TrainerError
from trainers.knobs import TASKS
from trainers.nas.blocks import ConvBnAct, FusedMBConvBlock, MBConvBlock, make_divisible
from trainers.nas.heads import ClassificationModel, SegmentationModel, build_retinanet

__all__ = [
    "ConvLayer",
    "MobileBackbone",
    "MobileFPN",
    "MobileLevels",
    "build_backbone",
    "build_mobile_classifier",
    "build_mobile_detector",
    "build_mobile_segmenter",
    "complete_config",
    "decode_arch",
    "FAMILIES",
]

FAMILIES = ("mnasnet", "efficientnetv2")


class ConvLayer(nn.Module):
    """Regular ``k x k`` conv-BN-act layer with an identity skip when shapes allow."""

    def __init__(self, in_channels: int, filters: int, stride: int = 1, kernel_size: int = 3,
                 act: str = "relu"):
        super().__init__()
        self.out_channels = filters
        self.conv = ConvBnAct(in_channels, filters, kernel_size, stride, act=act)
        self.use_skip = stride == 1 and in_channels == filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if self.use_skip else y


def _make_layer(spec, in_channels: int, filters: int, stride: int) -> nn.Module:
    if spec.op == "conv":
        return ConvLayer(in_channels, filters, stride, spec.kernel, act=spec.activation)
    if spec.op == "mbconv":
        return MBConvBlock(in_channels, filters, stride, expand_ratio=spec.expansion,
                           kernel_size=spec.kernel, se_ratio=spec.se, act=spec.activation)
    if spec.op == "fused_mbconv":
        return FusedMBConvBlock(in_channels, filters, stride, expand_ratio=spec.expansion,
                                kernel_size=spec.kernel, se_ratio=spec.se, act=spec.activation)
    raise TrainerError(f"unknown mobile op {spec.op!r}; valid: conv, mbconv, fused_mbconv")


class MobileBackbone(nn.Module):
    """Stem -> searched stages -> head conv.

    Attributes:
        out_channels: width of the head conv output (``forward``'s channels).
        feature_channels: ``{level: channels}`` of :meth:`forward_features` (level = log2 stride).
        specs: the decoded block specs.
    """

    def __init__(self, specs: Sequence[Any], stem_filters: int, head_filters: int,
                 width_scale: float = 1.0, in_channels: int = 3, stem_act: str = "relu"):
        super().__init__()
        if not width_scale > 0:
            raise TrainerError(f"width_scale must be > 0, got {width_scale!r}")
        self.specs = list(specs)
        stem = make_divisible(stem_filters * width_scale, 8)
        self.stem = ConvBnAct(in_channels, stem, 3, 2, act=stem_act)
        ch, stride = stem, 2
        stages, levels = [], []
        for spec in self.specs:
            filters = make_divisible(spec.filters * width_scale, 8)
            layers = []
            for r in range(spec.repeats):
                layers.append(_make_layer(spec, ch, filters, spec.stride if r == 0 else 1))
                ch = filters
            stages.append(nn.Sequential(*layers))
            stride *= spec.stride
            levels.append(stride.bit_length() - 1)
        self.stages = nn.ModuleList(stages)
        self.stage_levels = levels
        self.head = ConvBnAct(ch, make_divisible(head_filters * width_scale, 8), 1, act=stem_act)
        self.out_channels = self.head.out_channels
        # the last stage of each level feeds forward_features
        self._level_stage: dict[int, int] = {}
        chans: dict[int, int] = {}
        for i, (lvl, spec) in enumerate(zip(levels, self.specs)):
            self._level_stage[lvl] = i
            chans[lvl] = make_divisible(spec.filters * width_scale, 8)
        self.feature_channels = chans

    def forward_features(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """``{level: feature}`` taken after the last stage of each level (before the head conv)."""
        x = self.stem(x)
        out: dict[int, torch.Tensor] = {}
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if self._level_stage[self.stage_levels[i]] == i:
                out[self.stage_levels[i]] = x
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"head": head conv output}`` (the named-features convention of ``heads.py``)."""
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return {"head": self.head(x)}


class MobileFPN(nn.Module):
    """Detection backbone: a :class:`MobileBackbone` with a feature pyramid on levels 3-5 and
    two extra stride-2 levels (torchvision ``FeaturePyramidNetwork`` + ``LastLevelP6P7``).

    ``forward`` returns ``OrderedDict`` ``p3..p7``, each ``out_channels`` wide, the input
    :func:`trainers.nas.heads.build_retinanet` expects.
    """

    def __init__(self, backbone: MobileBackbone, out_channels: int = 64):
        super().__init__()
        missing = [lvl for lvl in (3, 4, 5) if lvl not in backbone.feature_channels]
        if missing:
            raise TrainerError(f"backbone has no features at levels {missing}")
        self.body = backbone
        self.fpn = FeaturePyramidNetwork(
            [backbone.feature_channels[lvl] for lvl in (3, 4, 5)], out_channels,
            extra_blocks=LastLevelP6P7(out_channels, out_channels),
        )
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body.forward_features(x)
        return self.fpn(OrderedDict((f"p{lvl}", feats[lvl]) for lvl in (3, 4, 5)))


class MobileLevels(nn.Module):
    """The stage outputs of ``levels`` (those the backbone has) as ``OrderedDict`` ``p<level>``,
    finest first; ``feature_channels`` maps each name to its width."""

    def __init__(self, backbone: MobileBackbone, levels: Sequence[int] = (2, 3, 4, 5)):
        super().__init__()
        self.body = backbone
        self.levels = tuple(lvl for lvl in sorted(levels) if lvl in backbone.feature_channels)
        if not self.levels:
            raise TrainerError(f"backbone has no features at levels {list(levels)}")
        self.feature_channels = {f"p{lvl}": backbone.feature_channels[lvl] for lvl in self.levels}

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body.forward_features(x)
        return OrderedDict((f"p{lvl}", feats[lvl]) for lvl in self.levels)


def _space_module(family: str):
    if family == "mnasnet":
        from spaces.library import mnasnet as mod
    elif family == "efficientnetv2":
        from spaces.library import efficientnetv2 as mod
    else:
        raise TrainerError(f"unknown mobile family {family!r}; valid: {', '.join(FAMILIES)}")
    return mod


def complete_config(family: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The family's space defaults overlaid with the space parameters found in ``config``.

    Keys that are not parameters of the space (run settings) are ignored.
    """
    from spaces.library import get_space

    space = get_space(family)
    full = dict(space.default())
    full.update({k: v for k, v in config.items() if k in space.params})
    return full


def decode_arch(family: str, config: Any, depth_scale: float = 1.0) -> list[Any]:
    """Block specs of ``config`` (a complete config or an ``ArchConfig`` over one)."""
    mod = _space_module(family)
    if family == "efficientnetv2":
        return mod.decode(config, depth_scale=depth_scale)
    if depth_scale != 1.0:
        raise TrainerError("depth_scale applies to efficientnetv2 only (mnasnet searches repeats)")
    return mod.decode(config)


def build_backbone(family: str, config: Any, width_scale: float = 1.0, depth_scale: float = 1.0,
                   in_channels: int = 3) -> MobileBackbone:
    """The ``family`` backbone (``"mnasnet"`` or ``"efficientnetv2"``) for ``config``.

    ``config`` is an :class:`~spaces.tree.ArchConfig` (reads are recorded on it) or a plain
    mapping (missing parameters take the space defaults).
    """
    mod = _space_module(family)
    if not callable(getattr(config, "pick", None)):
        config = complete_config(family, config)
    specs = decode_arch(family, config, depth_scale)
    stem_act = "relu" if family == "mnasnet" else specs[0].activation
    return MobileBackbone(specs, mod.STEM_FILTERS, mod.HEAD_FILTERS, width_scale, in_channels,
                          stem_act=stem_act)


def build_mobile_classifier(family: str, config: Any, num_classes: int, width_scale: float = 1.0,
                            depth_scale: float = 1.0, in_channels: int = 3,
                            dropout: float = 0.0) -> ClassificationModel:
    """Backbone of :func:`build_backbone` plus the shared pooled linear head
    (:class:`trainers.nas.heads.ClassificationModel` over the ``"head"`` feature)."""
    if int(num_classes) < 1:
        raise TrainerError(f"num_classes must be >= 1, got {num_classes!r}")
    backbone = build_backbone(family, config, width_scale, depth_scale, in_channels)
    return ClassificationModel(backbone, int(num_classes), levels=("head",), drop_rate=dropout)


def build_mobile_detector(family: str, config: Any, num_classes: int, image_size: int = 640,
                          width_scale: float = 1.0, depth_scale: float = 1.0,
                          fpn_channels: int | None = None, head_convs: int = 4,
                          head_filters: int | None = None, **retinanet_kwargs) -> nn.Module:
    """RetinaNet (:func:`trainers.nas.heads.build_retinanet`) over :class:`MobileFPN`.

    ``fpn_channels`` defaults to ``make_divisible(256 * width_scale, 8)``.
    """
    if int(num_classes) < 1:
        raise TrainerError(f"num_classes must be >= 1, got {num_classes!r}")
    backbone = build_backbone(family, config, width_scale, depth_scale)
    fpn = MobileFPN(backbone, fpn_channels or make_divisible(256 * width_scale, 8))
    return build_retinanet(fpn, int(num_classes), image_size=image_size, head_convs=head_convs,
                           head_filters=head_filters, **retinanet_kwargs)


def build_mobile_segmenter(family: str, config: Any, num_classes: int, width_scale: float = 1.0,
                           depth_scale: float = 1.0, filters: int | None = None,
                           head_convs: int = 1) -> SegmentationModel:
    """:class:`~trainers.nas.heads.SegmentationModel` over :class:`MobileLevels` (levels 2-5,
    logits at stride 4); ``filters`` (head width) defaults to
    ``make_divisible(256 * width_scale, 8)``. ``num_classes`` counts the background."""
    backbone = MobileLevels(build_backbone(family, config, width_scale, depth_scale))
    return SegmentationModel(backbone, backbone.feature_channels, int(num_classes),
                             filters=filters or make_divisible(256 * width_scale, 8),
                             convs=head_convs)


# ----------------------------------------------------------------------------------------------
# registry entries: trainers.nas.build_model("mnasnet" | "efficientnetv2", config, task, n)

#: build settings read by the mobile builders (``overrides`` first, then ``config``)
MOBILE_SETTINGS: dict[str, Any] = {
    "width_scale": 1.0,     # global width multiplier (proxy tasks)
    "depth_scale": 1.0,     # efficientnetv2 repeats multiplier (proxy tasks)
    "drop_rate": 0.0,       # classifier dropout
    "image_size": 640,      # detector input size
    "fpn_channels": None,   # detection pyramid width (None: 256 * width_scale)
    "head_convs": 4,        # RetinaNet / segmentation head tower depth
    "head_filters": None,   # RetinaNet / segmentation head width (None: pyramid width)
    "anchor_scale": 4.0,    # anchor base size = anchor_scale * stride
}


def _setting(config: Mapping[str, Any], overrides: Mapping[str, Any], key: str) -> Any:
    if overrides.get(key) is not None:
        return overrides[key]
    # plain lookup (an ArchConfig is not a Mapping; run settings are not architecture reads)
    value = dict.get(config, key) if isinstance(config, dict) else None
    return value if value is not None else MOBILE_SETTINGS[key]


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None else None


def _mobile_head(family: str, config: Any, task: str, num_classes: int,
                 overrides: Mapping[str, Any]) -> nn.Module:
    """The ``task`` model of ``family`` with the :data:`MOBILE_SETTINGS` read from
    ``overrides`` / ``config``."""
    width = float(_setting(config, overrides, "width_scale"))
    depth = float(_setting(config, overrides, "depth_scale"))
    fpn = _int_or_none(_setting(config, overrides, "fpn_channels"))
    head_convs = int(_setting(config, overrides, "head_convs"))
    head_filters = _int_or_none(_setting(config, overrides, "head_filters"))
    if task == "segmentation":
        return build_mobile_segmenter(family, config, num_classes, width_scale=width,
                                      depth_scale=depth, filters=head_filters or fpn,
                                      head_convs=head_convs)
    if task == "detection":
        return build_mobile_detector(
            family, config, num_classes, image_size=int(_setting(config, overrides, "image_size")),
            width_scale=width, depth_scale=depth, fpn_channels=fpn, head_convs=head_convs,
            head_filters=head_filters,
            anchor_scale=float(_setting(config, overrides, "anchor_scale")),
        )
    return build_mobile_classifier(family, config, num_classes, width_scale=width,
                                   depth_scale=depth,
                                   dropout=float(_setting(config, overrides, "drop_rate")))


def _registry_builder(family: str):
    def build(config: Mapping[str, Any], task: str, num_classes: int, **overrides) -> nn.Module:
        return _mobile_head(family, config, task, num_classes, overrides)

    build.__name__ = f"build_{family}"
    build.__doc__ = (f"Builder of the {family!r} space: classifier, RetinaNet detector or "
                     f"segmenter; settings {sorted(MOBILE_SETTINGS)}.")
    return build


def _register() -> None:
    from trainers.nas import register_builder

    for fam in FAMILIES:
        register_builder(fam, tasks=TASKS)(_registry_builder(fam))


_register()
