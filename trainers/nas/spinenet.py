"""SpineNet backbone built from a block-spec list (see ``spaces.library.spinenet``).

Structure: stem (7x7/2 conv, 3x3/2 max-pool, two level-2 bottleneck stages: features 0 and 1),
then one stage per live :class:`~spaces.library.spinenet.BlockSpec`. Each stage resamples its two
parents to the target level and width (1x1 conv to ``alpha`` x the parent's base width; down: one
3x3 stride-2 conv then 3x3 stride-2 max-pools; up: nearest interpolation; 1x1 conv to the target
width), sums them with any merged same-level features (a 1x1 projection when widths differ),
applies the activation and ``block_repeats`` blocks of the spec's type. Output blocks are projected
to ``endpoint_filters`` by 1x1 conv-BN-act and returned as ``OrderedDict`` p3..p7.

Base widths per level: {L1: 32, L2: 64, L3: 128, L4..L7: 256} x ``filter_scale``; bottleneck
blocks output 4x their base width. Spatial sizes follow ``ceil(H / 2**level)`` for any input size.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spaces.library.spinenet import NUM_STEM_FEATURES, STEM_LEVEL, BlockSpec, with_merges
from trainers.errors import TrainerError
from trainers.nas.blocks import ConvBnAct, block_expansion, get_activation, make_stage

__all__ = ["FILTER_SIZES", "Resample", "SpineNet", "level_filters"]

FILTER_SIZES: dict[int, int] = {1: 32, 2: 64, 3: 128, 4: 256, 5: 256, 6: 256, 7: 256}
MBCONV_KWARGS = {"expand_ratio": 6, "se_ratio": 0.2, "kernel_size": 3, "act": "swish"}


def level_filters(level: int, filter_scale: float) -> int:
    """Base width of a block at ``level`` (at least 1)."""
    return max(1, int(FILTER_SIZES[level] * filter_scale))


def _level_size(size: tuple[int, int], level: int) -> tuple[int, int]:
    return math.ceil(size[0] / 2 ** level), math.ceil(size[1] / 2 ** level)


class Resample(nn.Module):
    """Cross-scale connection: 1x1 conv to ``alpha * base``, resample, 1x1 conv to target."""

    def __init__(self, in_channels: int, in_base: int, in_level: int, target_level: int,
                 target_channels: int, alpha: float, act: str = "relu"):
        super().__init__()
        mid = max(1, int(in_base * alpha))
        self.reduce = ConvBnAct(in_channels, mid, 1, act=act)
        self.down = None
        self.pools = max(0, in_level - target_level - 1)
        if target_level > in_level:
            self.down = ConvBnAct(mid, mid, 3, 2, act=act)
            self.pools = target_level - in_level - 1
        self.upsample = target_level < in_level
        self.target_level = target_level
        self.expand = ConvBnAct(mid, target_channels, 1, act=None)

    def forward(self, x: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
        x = self.reduce(x)
        if self.down is not None:
            x = self.down(x)
            for _ in range(self.pools):
                x = F.max_pool2d(x, 3, 2, 1)
        elif self.upsample:
            x = F.interpolate(x, size=_level_size(input_size, self.target_level), mode="nearest")
        return self.expand(x)


class _Stage(nn.Module):
    def __init__(self, spec: BlockSpec, resamples: list[nn.Module], projections: list[nn.Module],
                 body: nn.Module, act: str):
        super().__init__()
        self.parents = tuple(spec.parents)
        self.merged = tuple(spec.merged)
        self.resamples = nn.ModuleList(resamples)
        self.projections = nn.ModuleList(projections)
        self.act = get_activation(act)
        self.body = body

    def forward(self, feats: list, input_size: tuple[int, int]) -> torch.Tensor:
        x = self.resamples[0](feats[self.parents[0]], input_size)
        x = x + self.resamples[1](feats[self.parents[1]], input_size)
        for proj, j in zip(self.projections, self.merged):
            x = x + proj(feats[j])
        return self.body(self.act(x))


class SpineNet(nn.Module):
    """Scale-permuted backbone returning ``OrderedDict(p3=..., ..., p7=...)``.

    Args:
        block_specs: intermediate then output blocks (``spaces.library.spinenet.decode`` or
            ``SPINENET49_BLOCK_SPECS``); ``merged`` and dead blocks are (re)derived here.
        endpoint_filters: width of every returned level (``self.out_channels``).
        filter_scale: multiplier of the per-level base widths.
        resample_alpha: width factor of cross-scale connections.
        block_repeats: blocks per stage (stem and scale-permuted stages).
        stem_block_type: block type of the two fixed level-2 stem stages.
        act: activation of residual/bottleneck blocks and connections (MBConv uses swish).
        in_chans: input channels.
    """

    def __init__(self, block_specs: Sequence[BlockSpec], endpoint_filters: int = 256,
                 filter_scale: float = 1.0, resample_alpha: float = 0.5, block_repeats: int = 1,
                 stem_block_type: str = "bottleneck", act: str = "relu", in_chans: int = 3):
        super().__init__()
        specs = with_merges(block_specs)
        out_levels = sorted(s.level for s in specs if s.is_output)
        if len(set(out_levels)) != len(out_levels):
            raise TrainerError(f"duplicate output levels in block specs: {out_levels}")
        self.out_levels = tuple(out_levels)
        self.out_channels = int(endpoint_filters)
        self.specs = specs

        stem_filters = level_filters(STEM_LEVEL, filter_scale)
        self.stem = nn.Sequential(ConvBnAct(in_chans, 64, 7, 2, act=act),
                                  nn.MaxPool2d(3, 2, 1))
        kw = self._block_kwargs(stem_block_type, act)
        self.stem_blocks = nn.ModuleList()
        ch = 64
        for _ in range(NUM_STEM_FEATURES):
            stage = make_stage(stem_block_type, ch, stem_filters, block_repeats, **kw)
            ch = stage.out_channels
            self.stem_blocks.append(stage)
        # per-feature (channels, base width, level); None for dead blocks
        info: list = [(ch, stem_filters, STEM_LEVEL)] * NUM_STEM_FEATURES
        self.stages = nn.ModuleDict()
        self.endpoints = nn.ModuleDict()
        for i, spec in enumerate(specs):
            if spec.block_type is None:
                info.append(None)
                continue
            base = level_filters(spec.level, filter_scale)
            target_ch = base * block_expansion(spec.block_type)
            resamples = [Resample(info[p][0], info[p][1], info[p][2], spec.level, target_ch,
                                  resample_alpha, act) for p in spec.parents]
            projections = [nn.Identity() if info[j][0] == target_ch
                           else ConvBnAct(info[j][0], target_ch, 1, act=None)
                           for j in spec.merged]
            kw = self._block_kwargs(spec.block_type, act)
            body = make_stage(spec.block_type, target_ch, base, block_repeats, **kw)
            self.stages[str(i)] = _Stage(spec, resamples, projections, body, act)
            info.append((body.out_channels, base, spec.level))
            if spec.is_output:
                self.endpoints[f"p{spec.level}"] = ConvBnAct(body.out_channels, endpoint_filters,
                                                             1, act=act)

    @staticmethod
    def _block_kwargs(block_type: str, act: str) -> dict:
        if block_type == "mbconv":
            return dict(MBCONV_KWARGS)
        return {"act": act}

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        input_size = (x.shape[-2], x.shape[-1])
        x = self.stem(x)
        feats: list = []
        for blk in self.stem_blocks:
            x = blk(x)
            feats.append(x)
        outs: dict[int, torch.Tensor] = {}
        for i, spec in enumerate(self.specs):
            key = str(i)
            if key not in self.stages:
                feats.append(None)
                continue
            y = self.stages[key](feats, input_size)
            feats.append(y)
            if spec.is_output:
                outs[spec.level] = self.endpoints[f"p{spec.level}"](y)
        return OrderedDict((f"p{lvl}", outs[lvl]) for lvl in self.out_levels)
