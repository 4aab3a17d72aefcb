"""Convolutional building blocks shared by the NAS model builders.

Every block takes ``(in_channels, filters, stride)`` and exposes ``out_channels``. A block's
output width is ``filters * block_expansion(block_type)``: bottleneck blocks expand by 4 (ResNet
convention), residual and MBConv blocks do not.

- :class:`ConvBnAct`: conv -> BatchNorm -> activation (activation optional).
- :class:`ResidualBlock`: two 3x3 convs with an identity (or 1x1 projection) shortcut.
- :class:`BottleneckBlock`: 1x1 -> 3x3 -> 1x1 (x4) with shortcut.
- :class:`MBConvBlock`: inverted residual (expand, depthwise kxk, squeeze-excite, project).
- :class:`FusedMBConvBlock`: fused expand kxk conv, squeeze-excite, 1x1 project.
- :func:`make_block` builds any of them by name; :func:`make_stage` repeats one.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from trainers.errors import TrainerError

__all__ = [
    "ACTIVATIONS",
    "BLOCK_TYPES",
    "BottleneckBlock",
    "ConvBnAct",
    "FusedMBConvBlock",
    "MBConvBlock",
    "ResidualBlock",
    "SqueezeExcite",
    "block_expansion",
    "get_activation",
    "make_block",
    "make_divisible",
    "make_stage",
]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "swish": lambda: nn.SiLU(inplace=True),
    "silu": lambda: nn.SiLU(inplace=True),
    "relu6": lambda: nn.ReLU6(inplace=True),
    "gelu": lambda: nn.GELU(),
    "identity": lambda: nn.Identity(),
}


def get_activation(name: str) -> nn.Module:
    """A fresh activation module by name (relu, swish/silu, relu6, gelu, identity)."""
    try:
        return ACTIVATIONS[name.lower()]()
    except KeyError:
        raise TrainerError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)}") from None


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor`` without dropping more than 10 %."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return int(new)


class ConvBnAct(nn.Sequential):
    """``kxk`` conv (no bias, 'same' padding) -> BatchNorm -> activation (``act=None``: none)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, act: str | None = "relu"):
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(get_activation(act))
        super().__init__(*layers)
        self.out_channels = out_channels


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return ConvBnAct(in_channels, out_channels, 1, stride, act=None)


class ResidualBlock(nn.Module):
    """Basic residual block: 3x3 -> 3x3, plus shortcut; output width ``filters``."""

    expansion = 1

    def __init__(self, in_channels: int, filters: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        self.out_channels = filters
        self.conv1 = ConvBnAct(in_channels, filters, 3, stride, act=act)
        self.conv2 = ConvBnAct(filters, filters, 3, 1, act=None)
        self.shortcut = _shortcut(in_channels, filters, stride)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class BottleneckBlock(nn.Module):
    """ResNet bottleneck: 1x1 -> 3x3 -> 1x1 (``4 * filters``), plus shortcut."""

    expansion = 4

    def __init__(self, in_channels: int, filters: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        out = filters * self.expansion
        self.out_channels = out
        self.conv1 = ConvBnAct(in_channels, filters, 1, 1, act=act)
        self.conv2 = ConvBnAct(filters, filters, 3, stride, act=act)
        self.conv3 = ConvBnAct(filters, out, 1, 1, act=None)
        self.shortcut = _shortcut(in_channels, out, stride)
        self.act = get_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global average pool -> reduce -> act -> expand -> sigmoid gate.

    The reduced width is ``max(1, int(reduce_base * se_ratio))`` where ``reduce_base`` is the
    block's input width (EfficientNet convention).
    """

    def __init__(self, channels: int, se_ratio: float, reduce_base: int | None = None,
                 act: str = "swish"):
        super().__init__()
        reduced = max(1, int((reduce_base or channels) * se_ratio))
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = get_activation(act)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConvBlock(nn.Module):
    """Inverted residual (MobileNetV2/EfficientNet): 1x1 expand, depthwise kxk, SE, 1x1 project.

    Identity skip when ``stride == 1`` and widths match. ``expand_ratio == 1`` skips the expand
    conv. ``se_ratio == 0`` disables squeeze-excite. Output width ``filters``.
    """

    expansion = 1

    def __init__(self, in_channels: int, filters: int, stride: int = 1, expand_ratio: float = 6,
                 kernel_size: int = 3, se_ratio: float = 0.2, act: str = "swish"):
        super().__init__()
        self.out_channels = filters
        mid = make_divisible(in_channels * expand_ratio, 1) if expand_ratio != 1 else in_channels
        self.expand = (ConvBnAct(in_channels, mid, 1, act=act) if expand_ratio != 1
                       else nn.Identity())
        self.depthwise = ConvBnAct(mid, mid, kernel_size, stride, groups=mid, act=act)
        self.se = (SqueezeExcite(mid, se_ratio, reduce_base=in_channels, act=act)
                   if se_ratio > 0 else nn.Identity())
        self.project = ConvBnAct(mid, filters, 1, act=None)
        self.use_skip = stride == 1 and in_channels == filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.use_skip else y


class FusedMBConvBlock(nn.Module):
    """Fused-MBConv (EfficientNetV2): kxk expand conv (stride here), SE, 1x1 project.

    With ``expand_ratio == 1`` the block is a single kxk conv. Identity skip as in MBConv.
    """

    expansion = 1

    def __init__(self, in_channels: int, filters: int, stride: int = 1, expand_ratio: float = 4,
                 kernel_size: int = 3, se_ratio: float = 0.0, act: str = "swish"):
        super().__init__()
        self.out_channels = filters
        if expand_ratio == 1:
            self.fused = ConvBnAct(in_channels, filters, kernel_size, stride, act=act)
            self.se = (SqueezeExcite(filters, se_ratio, reduce_base=in_channels, act=act)
                       if se_ratio > 0 else nn.Identity())
            self.project = nn.Identity()
        else:
            mid = make_divisible(in_channels * expand_ratio, 1)
            self.fused = ConvBnAct(in_channels, mid, kernel_size, stride, act=act)
            self.se = (SqueezeExcite(mid, se_ratio, reduce_base=in_channels, act=act)
                       if se_ratio > 0 else nn.Identity())
            self.project = ConvBnAct(mid, filters, 1, act=None)
        self.use_skip = stride == 1 and in_channels == filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.fused(x)))
        return x + y if self.use_skip else y


BLOCK_TYPES: dict[str, type[nn.Module]] = {
    "residual": ResidualBlock,
    "bottleneck": BottleneckBlock,
    "mbconv": MBConvBlock,
    "fused_mbconv": FusedMBConvBlock,
}


def block_expansion(block_type: str) -> int:
    """Output width of a block divided by its ``filters`` (bottleneck: 4, others: 1)."""
    return _block_class(block_type).expansion


def _block_class(block_type: str) -> type[nn.Module]:
    try:
        return BLOCK_TYPES[block_type]
    except KeyError:
        raise TrainerError(f"unknown block type {block_type!r}; valid: {sorted(BLOCK_TYPES)}") from None


def make_block(block_type: str, in_channels: int, filters: int, stride: int = 1,
               **kwargs) -> nn.Module:
    """Build one block by name; ``kwargs`` go to the block (e.g. ``expand_ratio``, ``se_ratio``)."""
    return _block_class(block_type)(in_channels, filters, stride, **kwargs)


def make_stage(block_type: str, in_channels: int, filters: int, repeats: int = 1, stride: int = 1,
               **kwargs) -> nn.Sequential:
    """``repeats`` blocks of one type; the first carries the stride and any width change.

    The returned ``nn.Sequential`` has ``out_channels``.
    """
    if repeats < 1:
        raise TrainerError(f"repeats must be >= 1, got {repeats}")
    blocks = []
    ch = in_channels
    for i in range(repeats):
        blk = make_block(block_type, ch, filters, stride if i == 0 else 1, **kwargs)
        ch = blk.out_channels
        blocks.append(blk)
    stage = nn.Sequential(*blocks)
    stage.out_channels = ch
    return stage
