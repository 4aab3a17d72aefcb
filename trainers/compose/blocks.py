"""The built-in blocks of composed networks (registered in :data:`trainers.compose.BLOCKS`).

Vega fine-grained names and arguments (``inchannel``/``outchannel``/``stride``):

- stems: ``InitialBlock(init_plane)`` (7x7/2 conv, BN, ReLU, 3x3/2 max-pool),
  ``SmallInputInitialBlock(init_plane)`` (3x3/1 conv, BN, ReLU);
- residual blocks: ``BasicBlock`` (expansion 1), ``BottleneckBlock`` (expansion 4);
- layers: ``BasicLayer(in_plane, expansion, block, layer_reps, items=None)`` (ResNet stages,
  width ``64 * 2**i``, stride 2 from the second stage), ``VariantLayer(in_plane, out_plane,
  doublechannel, downsample, expansion, block)`` (one block per code position; a 1 in
  ``doublechannel`` doubles the width there, a 1 in ``downsample`` gives stride 2);
- whole networks: ``ResNet(depth, num_class)`` and ``ResNetVariant(base_depth, base_channel,
  doublechannel, downsample, small_input, num_class)``;
- combinators: ``Repeat(num_reps, items, ref)``, ``Sequential(modules)``, ``Add(modules)``,
  ``Concat(modules, dim=1)``;
- operators: ``Conv2d``, ``BatchNorm2d``, ``ReLU``, ``MaxPool2d``, ``AdaptiveAvgPool2d``,
  ``Dropout``, ``Identity``, ``Flatten``, ``View``, ``Linear``; heads
  ``LinearClassificationHead(base_channel, num_class)`` and ``ClassifierHead`` (timm);
- archtune's NAS blocks: ``ConvBnAct``, ``ResidualBlock``, ``MBConv``, ``FusedMBConv``
  (``in_channels``, ``filters``, ``stride``, ...), and the multi-level backbones ``SpineNet``
  and ``NASFPN`` (p3..p7 features; the ``compose`` trainer puts a classification or RetinaNet
  head on a network that ends in one).

``ResNetVariant``'s classifier reads the width the layers really produce
(``base_channel * 2**sum(doublechannel) * expansion``); Vega hard-codes ``512 * expansion``,
which only agrees when the codes double the width to 512.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch
from timm.layers import ClassifierHead
from torch import nn

from trainers.compose.registry import BlockSpec, register_block
from trainers.errors import TrainerError
from trainers.nas.blocks import ConvBnAct, FusedMBConvBlock, MBConvBlock, ResidualBlock

__all__ = [
    "Add", "BasicBlock", "BasicLayer", "BottleneckBlock", "Concat", "InitialBlock",
    "LinearClassificationHead", "Repeat", "ResNet", "ResNetVariant", "SmallInputInitialBlock",
    "VariantLayer", "View", "repeat_items",
]

_RESNET_DEPTHS = {18: ("BasicBlock", [2, 2, 2, 2]), 34: ("BasicBlock", [3, 4, 6, 3]),
                  50: ("BottleneckBlock", [3, 4, 6, 3]), 101: ("BottleneckBlock", [3, 4, 23, 3]),
                  152: ("BottleneckBlock", [3, 8, 36, 3])}
_VARIANT_BLOCKS = {18: ("BasicBlock", 8), 34: ("BasicBlock", 16), 50: ("BottleneckBlock", 16),
                   101: ("BottleneckBlock", 33)}


# ---------------------------------------------------------------------------------- stems
@register_block("InitialBlock")
class InitialBlock(nn.Sequential):
    """ImageNet stem: 7x7/2 conv (no bias), BN, ReLU, 3x3/2 max-pool; ``init_plane`` channels."""

    def __init__(self, init_plane: int = 64):
        super().__init__(nn.Conv2d(3, init_plane, 7, 2, 3, bias=False), nn.BatchNorm2d(init_plane),
                         nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))


@register_block("SmallInputInitialBlock")
class SmallInputInitialBlock(nn.Sequential):
    """Small-image stem (CIFAR, digits): 3x3/1 conv (no bias), BN, ReLU."""

    def __init__(self, init_plane: int = 64):
        super().__init__(nn.Conv2d(3, init_plane, 3, 1, 1, bias=False), nn.BatchNorm2d(init_plane),
                         nn.ReLU(inplace=True))


# ---------------------------------------------------------------------------------- blocks
def _projection(inchannel: int, out: int, stride: int) -> nn.Module:
    if stride == 1 and inchannel == out:
        return nn.Identity()
    return ConvBnAct(inchannel, out, 1, stride, act=None)


@register_block("BasicBlock", expansion=1)
class BasicBlock(nn.Module):
    """Two 3x3 convs (the inner width ``inner_plane``, default ``outchannel``) plus shortcut."""

    expansion = 1

    def __init__(self, inchannel: int, outchannel: int, groups: int = 1, base_width: int = 64,
                 stride: int = 1, inner_plane: int | None = None):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise TrainerError("BasicBlock supports only groups=1 and base_width=64, got "
                               f"groups={groups}, base_width={base_width}")
        inner = inner_plane or outchannel
        self.conv1 = ConvBnAct(inchannel, inner, 3, stride)
        self.conv2 = ConvBnAct(inner, outchannel, 3, 1, act=None)
        self.shortcut = _projection(inchannel, outchannel, stride)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = outchannel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


@register_block("BottleneckBlock", expansion=4)
class BottleneckBlock(nn.Module):
    """1x1 -> 3x3 (stride, ``groups``) -> 1x1 to ``4 * outchannel``, plus shortcut (ResNet v1.5)."""

    expansion = 4

    def __init__(self, inchannel: int, outchannel: int, groups: int = 1, base_width: int = 64,
                 stride: int = 1):
        super().__init__()
        width = int(outchannel * (base_width / 64.0)) * groups
        out = outchannel * self.expansion
        self.conv1 = ConvBnAct(inchannel, width, 1)
        self.conv2 = ConvBnAct(width, width, 3, stride, groups=groups)
        self.conv3 = ConvBnAct(width, out, 1, act=None)
        self.shortcut = _projection(inchannel, out, stride)
        self.act = nn.ReLU(inplace=True)
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


# ---------------------------------------------------------------------------------- repeat
def repeat_items(items: Mapping[str, Any] | None, num_reps: int, where: str = "Repeat") -> list[dict]:
    """Per-repetition keyword arguments: a list gives one value per repetition (the last one
    reused when short); any other value (tuples included) is used by every repetition.

    Raises:
        TrainerError: ``num_reps < 1`` or a list longer than ``num_reps``.
    """
    if isinstance(num_reps, bool) or not isinstance(num_reps, int) or num_reps < 1:
        raise TrainerError(f"{where}.num_reps: must be an integer >= 1, got {num_reps!r}")
    out: list[dict] = [{} for _ in range(num_reps)]
    for key, value in (items or {}).items():
        if isinstance(value, list):
            if not value:
                raise TrainerError(f"{where}.items.{key}: an empty list gives no value")
            if len(value) > num_reps:
                raise TrainerError(f"{where}.items.{key}: {len(value)} values for num_reps="
                                   f"{num_reps} repetitions; give at most {num_reps} (the last "
                                   "value is reused when shorter)")
            for i in range(num_reps):
                out[i][key] = value[min(i, len(value) - 1)]
        else:
            for i in range(num_reps):
                out[i][key] = value
    return out


def _as_spec(block: Any, where: str) -> BlockSpec:
    if isinstance(block, BlockSpec):
        return block
    if isinstance(block, Mapping) and "type" in block:
        return BlockSpec(str(block["type"]), {k: v for k, v in block.items() if k != "type"},
                         path=where)
    if isinstance(block, str):
        return BlockSpec(block, {}, path=where)
    raise TrainerError(f"{where}: expected a block reference {{type: Block, ...}}, got {block!r}")


@register_block("Repeat")
class Repeat(nn.Sequential):
    """``num_reps`` copies of ``ref``, copy ``i`` built with the ``i``-th value of each item."""

    def __init__(self, num_reps: int, ref: Any, items: Mapping[str, Any] | None = None):
        spec = _as_spec(ref, "Repeat.ref")
        super().__init__(*[spec.build(**kw) for kw in
                           repeat_items(items, num_reps, spec.path.rsplit(".", 1)[0] or "Repeat")])


def _block_expansion(spec: BlockSpec) -> int:
    return int(getattr(spec.target(), "expansion", 1))


@register_block("BasicLayer")
class BasicLayer(nn.Sequential):
    """ResNet stages of ``block``: ``layer_reps[i]`` blocks of width ``64 * 2**i``, the first of
    each stage after the first with stride 2. With ``items`` the blocks' arguments are given
    explicitly (``len(layer_reps)`` or ``layer_reps`` repetitions)."""

    def __init__(self, in_plane: int, expansion: int, block: Any, layer_reps: Any,
                 items: Mapping[str, Any] | None = None, groups: int = 1, base_width: int = 64):
        spec = _as_spec(block, "BasicLayer.block")
        if items is None:
            if not isinstance(layer_reps, (list, tuple)) or not layer_reps:
                raise TrainerError(f"{spec.path}: layer_reps must be a non-empty list of block "
                                   f"counts per stage, got {layer_reps!r}")
            inch, outch, stride = [], [], []
            plane = in_plane
            for i, reps in enumerate(layer_reps):
                for r in range(int(reps)):
                    inch.append(plane)
                    outch.append(64 * 2 ** i)
                    stride.append(2 if (r == 0 and i > 0) else 1)
                    plane = 64 * 2 ** i * expansion
            items = {"inchannel": inch, "outchannel": outch, "stride": stride}
            num_reps = len(inch)
        else:
            num_reps = len(layer_reps) if isinstance(layer_reps, (list, tuple)) else int(layer_reps)
        extra = {"groups": groups, "base_width": base_width} if (groups, base_width) != (1, 64) else {}
        per = repeat_items({**items, **extra}, num_reps, spec.path.rsplit(".", 1)[0])
        super().__init__(*[spec.build(**kw) for kw in per])


def variant_items(in_plane: int, doublechannel: Sequence[int], downsample: Sequence[int],
                  expansion: int) -> dict[str, list[int]]:
    """The per-block ``inchannel``/``outchannel``/``stride`` of a ResNet variant code."""
    if len(doublechannel) != len(downsample):
        raise TrainerError(f"doublechannel ({len(doublechannel)} positions) and downsample "
                           f"({len(downsample)} positions) must have the same length")
    bad = [c for c in list(doublechannel) + list(downsample) if c not in (0, 1)]
    if bad:
        raise TrainerError(f"doublechannel/downsample codes hold only 0 and 1, got {bad[:3]}")
    inch, outch, stride = [], [], []
    plane, width = in_plane, in_plane
    for dc, ds in zip(doublechannel, downsample):
        inch.append(plane)
        width = width * 2 if dc else width
        outch.append(width)
        stride.append(2 if ds else 1)
        plane = width * expansion
    return {"inchannel": inch, "outchannel": outch, "stride": stride}


@register_block("VariantLayer")
class VariantLayer(nn.Sequential):
    """One ``block`` per code position (Vega's BackboneNas layer); see :func:`variant_items`."""

    def __init__(self, in_plane: int, doublechannel: Sequence[int], downsample: Sequence[int],
                 expansion: int, block: Any, out_plane: int | None = None, groups: int = 1,
                 base_width: int = 64):
        spec = _as_spec(block, "VariantLayer.block")
        items: dict[str, Any] = variant_items(in_plane, list(doublechannel), list(downsample),
                                              expansion)
        if (groups, base_width) != (1, 64):
            items.update(groups=groups, base_width=base_width)
        super().__init__(*[spec.build(**kw)
                           for kw in repeat_items(items, len(doublechannel), spec.path)])
        self.out_channels = items["outchannel"][-1] * expansion


# ---------------------------------------------------------------------------------- networks
@register_block("View")
class View(nn.Module):
    """Flatten every dimension after the batch (Vega's ``View``); ``size`` reshapes instead."""

    def __init__(self, size: Sequence[int] | None = None):
        super().__init__()
        self.size = tuple(size) if size is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.size(0), -1) if self.size is None else x.view(*self.size)


@register_block("LinearClassificationHead")
class LinearClassificationHead(nn.Sequential):
    """Global average pool, flatten, linear ``base_channel -> num_class``."""

    def __init__(self, base_channel: int, num_class: int = 10):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(base_channel, num_class))


@register_block("ResNet")
class ResNet(nn.Sequential):
    """Coarse ResNet: ``depth`` 18/34 (BasicBlock) or 50/101/152 (BottleneckBlock), or a custom
    ``block`` with ``items``/``num_reps``; ImageNet stem, average pool, linear head."""

    def __init__(self, depth: int, block: Any = None, items: Mapping[str, Any] | None = None,
                 num_class: int = 10, num_reps: int = 4, init_plane: int = 64,
                 out_plane: int = 512):
        if depth in _RESNET_DEPTHS and items is None:
            name, reps = _RESNET_DEPTHS[depth]
            spec = _as_spec(block or {"type": name}, "ResNet.block")
            layers = BasicLayer(init_plane, _block_expansion(spec), spec, reps)
        elif block is not None and items is not None:
            spec = _as_spec(block, "ResNet.block")
            layers = BasicLayer(init_plane, _block_expansion(spec), spec, num_reps, items=items)
        else:
            raise TrainerError(f"ResNet.depth: {depth!r} is not one of "
                               f"{sorted(_RESNET_DEPTHS)}; give block and items for other depths")
        super().__init__(InitialBlock(init_plane), layers, nn.AdaptiveAvgPool2d(1), View(),
                         nn.Linear(out_plane * _block_expansion(spec), num_class))


@register_block("ResNetVariant")
class ResNetVariant(nn.Sequential):
    """Vega's BackboneNas network: ``base_depth`` picks the block and the code length (18: 8
    BasicBlocks, 34: 16, 50: 16 BottleneckBlocks, 101: 33); the codes place width doublings
    and stride-2 blocks."""

    def __init__(self, base_depth: int, base_channel: int, doublechannel: Sequence[int],
                 downsample: Sequence[int], small_input: bool = True, num_class: int = 10):
        if base_depth not in _VARIANT_BLOCKS:
            raise TrainerError(f"ResNetVariant.base_depth: {base_depth!r} is not one of "
                               f"{sorted(_VARIANT_BLOCKS)}")
        name, length = _VARIANT_BLOCKS[base_depth]
        for key, code in (("doublechannel", doublechannel), ("downsample", downsample)):
            if len(code) != length:
                raise TrainerError(f"ResNetVariant.{key}: base_depth {base_depth} needs a code of "
                                   f"{length} positions, got {len(code)}")
        spec = BlockSpec(name, {}, path="ResNetVariant.block")
        exp = _block_expansion(spec)
        stem = SmallInputInitialBlock(base_channel) if small_input else InitialBlock(base_channel)
        layer = VariantLayer(base_channel, doublechannel, downsample, exp, spec)
        super().__init__(stem, layer, nn.AdaptiveAvgPool2d(1), View(),
                         nn.Linear(layer.out_channels, num_class))


# ---------------------------------------------------------------------------------- combinators
def _children(modules: Any, where: str) -> list[nn.Module]:
    if not isinstance(modules, (list, tuple)) or not modules:
        raise TrainerError(f"{where}.modules: expected a non-empty list of blocks, got {modules!r}")
    return [_as_spec(m, f"{where}.modules.{i}").build() for i, m in enumerate(modules)]


@register_block("Sequential")
class Sequential(nn.Sequential):
    """Blocks applied in order."""

    def __init__(self, modules: Sequence[Any]):
        super().__init__(*_children(modules, "Sequential"))


@register_block("Add")
class Add(nn.Module):
    """Sum of the branches' outputs (same shape)."""

    def __init__(self, modules: Sequence[Any]):
        super().__init__()
        self.branches = nn.ModuleList(_children(modules, "Add"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.branches[0](x)
        for branch in self.branches[1:]:
            out = out + branch(x)
        return out


@register_block("Concat")
class Concat(nn.Module):
    """Branches' outputs concatenated along ``dim`` (channels by default)."""

    def __init__(self, modules: Sequence[Any], dim: int = 1):
        super().__init__()
        self.branches = nn.ModuleList(_children(modules, "Concat"))
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], dim=self.dim)


# ---------------------------------------------------------------------------------- backbones
def _spinenet(family: str = "spinenet49", endpoint_filters: int = 256, filter_scale: float = 1.0,
              resample_alpha: float = 0.5, block_repeats: int = 1) -> nn.Module:
    """A SpineNet p3..p7 backbone: ``spinenet49`` blocks, or the default architecture of the
    ``spinenet``/``spinenet_v2``/``spinenet_mbconv`` space."""
    from spaces.library import get_space
    from spaces.library import spinenet as spinenet_space
    from trainers.nas.spinenet import SpineNet

    if family == "spinenet49":
        specs = spinenet_space.SPINENET49_BLOCK_SPECS
    elif family in spinenet_space.FAMILIES:
        specs = spinenet_space.decode(get_space(family).default(), family)
    else:
        raise TrainerError(f"SpineNet.family: {family!r} is not one of "
                           f"{['spinenet49', *spinenet_space.FAMILIES]}")
    return SpineNet(specs, endpoint_filters=endpoint_filters, filter_scale=filter_scale,
                    resample_alpha=resample_alpha, block_repeats=block_repeats)


def _nasfpn(fpn_backbone: str = "resnet10t", fpn_filters: int = 64, fpn_repeats: int = 1) -> nn.Module:
    """A timm pyramid with the default NAS-FPN cells of the ``nasfpn`` space (p3..p7)."""
    from spaces.library import get_space
    from trainers.nas.spinenet_builders import nasfpn_backbone

    cfg = {**get_space("nasfpn").default(), "fpn_backbone": fpn_backbone,
           "fpn_filters": fpn_filters, "fpn_repeats": fpn_repeats}
    return nasfpn_backbone(cfg, {})


for _name, _obj in {
    "Conv2d": nn.Conv2d, "BatchNorm2d": nn.BatchNorm2d, "ReLU": nn.ReLU, "MaxPool2d": nn.MaxPool2d,
    "AdaptiveAvgPool2d": nn.AdaptiveAvgPool2d, "Dropout": nn.Dropout, "Identity": nn.Identity,
    "Flatten": nn.Flatten, "Linear": nn.Linear, "ClassifierHead": ClassifierHead,
    "ConvBnAct": ConvBnAct, "ResidualBlock": ResidualBlock, "MBConv": MBConvBlock,
    "FusedMBConv": FusedMBConvBlock,
}.items():
    register_block(_name, _obj)
register_block("SpineNet", _spinenet, backbone=True)
register_block("NASFPN", _nasfpn, backbone=True)
