"""An MnasNet-style weight-sharing supernet (small enough for digits on CPU) and the
stand-alone network of one of its architectures, built by :mod:`trainers.nas.mobile`.

Structure (mirrors :class:`trainers.nas.mobile.MobileBackbone` +
:class:`trainers.nas.heads.ClassificationModel`): stem conv 3x3/2 -> one searched block per
entry of ``filters`` -> head conv 1x1 -> global average pool -> dropout -> linear.
Decisions per block ``i`` (keys as in the ``mnasnet`` library space):

- ``blocks.<i>.op``        OperationSpace ``ops`` from {conv, mbconv, skip}
- ``blocks.<i>.kernel``    ValueSpace ``kernels`` shared by conv and mbconv (centre-cropped),
  active iff op in {conv, mbconv}: a skip block's configuration has no kernel
- ``blocks.<i>.width``     ValueSpace ``widths`` x the block's filters (sliced channels)
- ``blocks.<i>.expansion`` ValueSpace ``expansions``, active iff op == mbconv

``skip`` (FBNet's skip, ProxylessNAS's zero op made shape-safe) is the identity when the
block's stride is 1 and its input and output widths are equal, otherwise a 1x1 conv-BN
projection (no activation) with the block's stride; it makes the depth searchable.

Widths are ``make_divisible(filters * width * width_scale, 8)`` as in the ``nas`` builders, so
:func:`standalone` builds exactly the network :func:`~trainers.oneshot.build_subnet` exports.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainers.errors import TrainerError
from trainers.nas.blocks import ConvBnAct, make_divisible
from trainers.oneshot import ops
from trainers.oneshot.mutables import OperationSpace, ValueSpace, derive, value_of

__all__ = ["SUPERNET_DEFAULTS", "MnasNetSupernet", "mnasnet_supernet", "skip_layer",
           "standalone"]

SUPERNET_DEFAULTS: dict[str, Any] = {
    "num_classes": 10, "in_channels": 3, "width_scale": 1.0, "stem_filters": 16,
    "head_filters": 128, "filters": (32, 32, 64, 64), "strides": (1, 2, 1, 2),
    "ops": ("conv", "mbconv"), "kernels": (3, 5), "expansions": (1, 3, 6),
    "widths": (0.5, 0.75, 1.0), "drop_rate": 0.0,
}


def _channels(filters: int, width_scale: float):
    def fn(width: float) -> int:
        return make_divisible(filters * width * width_scale, 8)
    return fn


def _skip(stride: int, cin: Any, cout: Any) -> bool:
    return stride == 1 and value_of(cin) == value_of(cout)


class SuperConvLayer(nn.Module):
    """Regular k x k conv-BN-ReLU with an identity skip when shapes allow
    (:class:`trainers.nas.mobile.ConvLayer`)."""

    def __init__(self, cin: Any, cout: Any, stride: int, kernel: ValueSpace) -> None:
        super().__init__()
        self.conv = nn.Sequential(ops.Conv2d(cin, cout, kernel, stride), ops.BatchNorm2d(cout),
                                  nn.ReLU(inplace=True))
        self.cin, self.cout, self.stride = cin, cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return x + y if _skip(self.stride, self.cin, self.cout) else y


class SuperMBConv(nn.Module):
    """Inverted residual without SE (:class:`trainers.nas.blocks.MBConvBlock`, ReLU): 1x1
    expand (skipped at expansion 1), depthwise k x k, 1x1 project."""

    def __init__(self, cin: Any, cout: Any, stride: int, kernel: ValueSpace,
                 expansion: ValueSpace) -> None:
        super().__init__()
        self.expansion = expansion
        mid = derive(lambda c, e: int(c * e), cin, expansion)
        self.expand = nn.Sequential(ops.Conv2d(cin, mid, 1), ops.BatchNorm2d(mid),
                                    nn.ReLU(inplace=True))
        self.depthwise = nn.Sequential(ops.Conv2d(mid, mid, kernel, stride, depthwise=True),
                                       ops.BatchNorm2d(mid), nn.ReLU(inplace=True))
        self.project = nn.Sequential(ops.Conv2d(mid, cout, 1), ops.BatchNorm2d(cout))
        self.cin, self.cout, self.stride = cin, cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if value_of(self.expansion) == 1 else self.expand(x)
        y = self.project(self.depthwise(h))
        return x + y if _skip(self.stride, self.cin, self.cout) else y

    def export_subnet(self) -> nn.Module:
        """Drop the expand conv at expansion 1 (as MBConvBlock has none)."""
        if value_of(self.expansion) == 1:
            self.expand = nn.Identity()
        return self


class SuperSkip(nn.Module):
    """The ``skip`` op: identity when shapes allow, else a 1x1 conv-BN projection."""

    def __init__(self, cin: Any, cout: Any, stride: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(ops.Conv2d(cin, cout, 1, stride), ops.BatchNorm2d(cout))
        self.cin, self.cout, self.stride = cin, cout, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if _skip(self.stride, self.cin, self.cout) else self.proj(x)

    def export_subnet(self) -> nn.Module:
        """``nn.Identity`` when shapes allow (as :func:`skip_layer` builds it)."""
        return nn.Identity() if _skip(self.stride, self.cin, self.cout) else self


def skip_layer(cin: int, cout: int, stride: int) -> nn.Module:
    """The stand-alone ``skip`` op: ``nn.Identity`` when ``stride == 1`` and ``cin == cout``,
    else ``Sequential(Conv2d 1x1 (no bias), BatchNorm2d)`` with ``stride``."""
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class SuperBlock(nn.Module):
    """One searched block: width, op and, inside the candidates that use them, kernel (conv,
    mbconv) and expansion (mbconv).

    The kernel ValueSpace is keyed ``blocks.<index>.kernel`` and registered only through the
    candidates that read it, so its decision is conditional on the op."""

    def __init__(self, index: int, cin: Any, filters: int, stride: int, width_scale: float,
                 op_names: Sequence[str], kernels: Sequence[int], expansions: Sequence[int],
                 widths: Sequence[float]) -> None:
        super().__init__()
        self.width = ValueSpace(widths)
        kernel = ValueSpace(kernels, key=f"blocks.{index}.kernel")
        self.out_channels = derive(_channels(filters, width_scale), self.width)
        cands: dict[str, nn.Module] = {}
        for name in op_names:
            if name == "conv":
                cands[name] = SuperConvLayer(cin, self.out_channels, stride, kernel)
            elif name == "mbconv":
                exp = ValueSpace(expansions, key=f"blocks.{index}.expansion")
                cands[name] = SuperMBConv(cin, self.out_channels, stride, kernel, exp)
            elif name == "skip":
                cands[name] = SuperSkip(cin, self.out_channels, stride)
            else:
                raise TrainerError(f"unknown op {name!r}; valid: conv, mbconv, skip")
        self.op = OperationSpace(cands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class MnasNetSupernet(nn.Module):
    """The supernet (see the module docstring); arguments as in :data:`SUPERNET_DEFAULTS`."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(SUPERNET_DEFAULTS))
        if unknown:
            raise TrainerError(f"MnasNetSupernet: unknown arguments {unknown}; valid: "
                             f"{sorted(SUPERNET_DEFAULTS)}")
        a = {**SUPERNET_DEFAULTS, **kwargs}
        self.settings = dict(a)
        if len(a["filters"]) != len(a["strides"]):
            raise TrainerError("MnasNetSupernet: filters and strides must have the same length")
        ws = float(a["width_scale"])
        stem = make_divisible(a["stem_filters"] * ws, 8)
        self.stem = ConvBnAct(int(a["in_channels"]), stem, 3, 2)
        blocks, cin = [], stem
        for i, (f, s) in enumerate(zip(a["filters"], a["strides"])):
            blk = SuperBlock(i, cin, int(f), int(s), ws, a["ops"], a["kernels"],
                             a["expansions"], a["widths"])
            blocks.append(blk)
            cin = blk.out_channels
        self.blocks = nn.ModuleList(blocks)
        head = make_divisible(a["head_filters"] * ws, 8)
        self.head = nn.Sequential(ops.Conv2d(cin, head, 1), ops.BatchNorm2d(head),
                                  nn.ReLU(inplace=True))
        self.drop = nn.Dropout(float(a["drop_rate"]))
        self.fc = nn.Linear(head, int(a["num_classes"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for blk in self.blocks:
            x = blk(x)
        return self.fc(self.drop(self.head(x).mean((2, 3))))


def mnasnet_supernet(**kwargs: Any) -> MnasNetSupernet:
    """Factory of :class:`MnasNetSupernet` (the default ``supernet`` of the one-shot trainers)."""
    return MnasNetSupernet(**kwargs)


def _kernel(config: Mapping[str, Any], index: int, op: str, kernels: Sequence[int]) -> int:
    """Block ``index``'s kernel size: ``config``'s for conv and mbconv; for skip, which has no
    kernel, the first of ``kernels`` (a placeholder: the stage is replaced by
    :func:`skip_layer`)."""
    if op == "skip":
        return int(kernels[0])
    return int(config[f"blocks.{index}.kernel"])


def standalone(config: Mapping[str, Any], **kwargs: Any) -> nn.Module:
    """The architecture ``config`` built from scratch by :mod:`trainers.nas.mobile`
    (``MobileBackbone`` + ``ClassificationModel``), for supernet arguments ``kwargs``; a
    ``skip`` block's stage is :func:`skip_layer`.

    ``config`` holds ``blocks.<i>.op`` and ``blocks.<i>.width`` for every block,
    ``blocks.<i>.kernel`` for conv and mbconv blocks and ``blocks.<i>.expansion`` for mbconv
    blocks; keys a block does not use are ignored (a skip block's kernel may be absent).

    Raises:
        KeyError: a key the architecture uses is missing.
    """
    from spaces.library.mnasnet import MobileBlockSpec
    from trainers.nas.heads import ClassificationModel
    from trainers.nas.mobile import MobileBackbone

    a = {**SUPERNET_DEFAULTS, **kwargs}
    ws = float(a["width_scale"])
    specs, skips = [], []
    cin = make_divisible(a["stem_filters"] * ws, 8)
    for i, (f, s) in enumerate(zip(a["filters"], a["strides"])):
        op = config[f"blocks.{i}.op"]
        filters = f * float(config[f"blocks.{i}.width"])
        cout = make_divisible(filters * ws, 8)
        if op == "skip":
            skips.append((i, skip_layer(cin, cout, int(s))))
        specs.append(MobileBlockSpec(
            op="conv" if op == "skip" else op, repeats=1, filters=filters, stride=int(s),
            kernel=_kernel(config, i, op, a["kernels"]),
            expansion=int(config[f"blocks.{i}.expansion"]) if op == "mbconv" else 1,
            se=0.0, activation="relu"))
        cin = cout
    backbone = MobileBackbone(specs, a["stem_filters"], a["head_filters"], ws,
                              int(a["in_channels"]))
    for i, layer in skips:
        backbone.stages[i] = nn.Sequential(layer)
    return ClassificationModel(backbone, int(a["num_classes"]), levels=("head",),
                               drop_rate=float(a["drop_rate"]))
