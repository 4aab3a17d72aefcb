"""NAS-FPN neck built from merging-cell specs (see ``spaces.library.nasfpn``), and a small
pyramid backbone (timm ``features_only`` C3..C5 plus P6/P7 by stride-2 convs) to put under it.

Cell: both inputs are resampled to the cell's level (all features share ``filters`` channels, so
no width change inside the stack; inputs are projected once by 1x1 conv-BN when their width
differs): 3x3 stride-2 max-pools down, nearest interpolation up. ``sum`` adds them; ``attention``
computes ``coarser + finer * sigmoid(global max-pool(coarser))`` (coarser = higher input level;
on a tie the later feature). An output cell also adds the unconsumed same-level intermediate
features. Then activation -> 3x3 conv -> BN. The stack of cells is repeated ``repeats`` times,
each repeat with its own weights, P3..P7 of one repeat feeding the next.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import timm
import torch
import torch.nn.functional as F
from torch import nn

from spaces.library.nasfpn import INPUT_LEVELS, CellSpec
from trainers.errors import TrainerError
from trainers.nas.blocks import ConvBnAct, get_activation

__all__ = ["MergingCell", "NASFPN", "NASFPNBackbone", "TimmPyramid"]


def _resample(x: torch.Tensor, from_level: int, to_level: int,
              size: tuple[int, int]) -> torch.Tensor:
    if to_level > from_level:
        for _ in range(to_level - from_level):
            x = F.max_pool2d(x, 3, 2, 1)
    elif to_level < from_level:
        x = F.interpolate(x, size=size, mode="nearest")
    return x


class MergingCell(nn.Module):
    """One NAS-FPN merging cell (see the module docstring)."""

    def __init__(self, spec: CellSpec, levels: Sequence[int], filters: int, act: str = "relu"):
        super().__init__()
        self.spec = spec
        self.in_levels = tuple(levels[i] for i in spec.inputs)
        self.merged_levels = tuple(levels[j] for j in spec.merged)
        self.act = get_activation(act)
        self.conv = nn.Conv2d(filters, filters, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(filters)

    def forward(self, feats: list, sizes: dict[int, tuple[int, int]]) -> torch.Tensor:
        lvl = self.spec.level
        a, b = (_resample(feats[i], li, lvl, sizes[lvl])
                for i, li in zip(self.spec.inputs, self.in_levels))
        if self.spec.op == "attention":
            # coarser = the input from the higher level (tie: the later feature, b)
            coarse, fine = (a, b) if self.in_levels[0] > self.in_levels[1] else (b, a)
            gate = torch.sigmoid(torch.amax(coarse, dim=(2, 3), keepdim=True))
            x = coarse + fine * gate
        else:
            x = a + b
        for j in self.spec.merged:
            x = x + feats[j]
        return self.bn(self.conv(self.act(x)))


class _CellStack(nn.Module):
    def __init__(self, cells: Sequence[CellSpec], filters: int, act: str):
        super().__init__()
        levels = list(INPUT_LEVELS)
        mods = []
        self.live = []
        for c in cells:
            if c.op is None:  # dead cell: never computed
                mods.append(nn.Identity())
                self.live.append(False)
            else:
                mods.append(MergingCell(c, levels, filters, act))
                self.live.append(True)
            levels.append(c.level)
        self.cells = nn.ModuleList(mods)
        self.specs = list(cells)

    def forward(self, feats: list, sizes: dict) -> list:
        feats = list(feats)
        outs = {}
        for spec, cell, live in zip(self.specs, self.cells, self.live):
            y = cell(feats, sizes) if live else None
            feats.append(y)
            if spec.is_output:
                outs[spec.level] = y
        return [outs[lvl] for lvl in INPUT_LEVELS]


class NASFPN(nn.Module):
    """NAS-FPN neck: inputs C3..C7 (list, widths ``in_channels``) -> OrderedDict p3..p7."""

    def __init__(self, in_channels: Sequence[int], cells: Sequence[CellSpec], filters: int = 256,
                 repeats: int = 3, act: str = "relu"):
        super().__init__()
        if len(in_channels) != len(INPUT_LEVELS):
            raise TrainerError(f"NAS-FPN needs {len(INPUT_LEVELS)} inputs (C3..C7), "
                             f"got {len(in_channels)}")
        out_levels = sorted(c.level for c in cells if c.is_output)
        if out_levels != list(INPUT_LEVELS):
            raise TrainerError(f"output cells must cover levels 3..7 once, got {out_levels}")
        if repeats < 1:
            raise TrainerError(f"repeats must be >= 1, got {repeats}")
        self.out_channels = int(filters)
        self.lateral = nn.ModuleList(
            nn.Identity() if c == filters else ConvBnAct(c, filters, 1, act=None)
            for c in in_channels)
        self.stacks = nn.ModuleList(_CellStack(cells, filters, act) for _ in range(repeats))

    def forward(self, feats: Sequence[torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        feats = [lat(f) for lat, f in zip(self.lateral, feats)]
        sizes = {lvl: tuple(f.shape[-2:]) for lvl, f in zip(INPUT_LEVELS, feats)}
        for stack in self.stacks:
            feats = stack(feats, sizes)
        return OrderedDict((f"p{lvl}", f) for lvl, f in zip(INPUT_LEVELS, feats))


class TimmPyramid(nn.Module):
    """C3..C5 from a timm ``features_only`` model plus C6/C7 by 3x3 stride-2 conv-BN(-act).

    ``forward`` returns a list of 5 tensors; ``level_channels`` their widths.
    """

    def __init__(self, model_name: str = "resnet10t", pretrained: bool = False,
                 extra_filters: int = 256, in_chans: int = 3):
        super().__init__()
        probe = timm.create_model(model_name, features_only=True, pretrained=False,
                                  in_chans=in_chans)
        red = probe.feature_info.reduction()
        idx = [red.index(s) for s in (8, 16, 32) if s in red]
        if len(idx) != 3:
            raise TrainerError(f"timm model {model_name!r} lacks stride-8/16/32 features "
                             f"(reductions {red})")
        del probe
        self.body = timm.create_model(model_name, features_only=True, pretrained=pretrained,
                                      out_indices=tuple(idx), in_chans=in_chans)
        chans = list(self.body.feature_info.channels())
        self.p6 = ConvBnAct(chans[-1], extra_filters, 3, 2, act=None)
        self.p7 = nn.Sequential(nn.ReLU(), ConvBnAct(extra_filters, extra_filters, 3, 2, act=None))
        self.level_channels = chans + [extra_filters, extra_filters]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3, c4, c5 = self.body(x)
        p6 = self.p6(c5)
        return [c3, c4, c5, p6, self.p7(p6)]


class NASFPNBackbone(nn.Module):
    """Pyramid backbone + NAS-FPN neck; ``out_channels`` = neck filters; returns p3..p7."""

    def __init__(self, pyramid: nn.Module, neck: NASFPN):
        super().__init__()
        self.pyramid = pyramid
        self.neck = neck
        self.out_channels = neck.out_channels

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        return self.neck(self.pyramid(x))

