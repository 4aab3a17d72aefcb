"""EfficientNetV2 search space (Tan & Le 2021) over the EfficientNetV2-S skeleton.

Reference (paper Table 4, EfficientNetV2-S): stem 3x3/2 conv with 24 filters, then 6 blocks with
repeats ``[2, 4, 4, 6, 9, 15]``, filters ``[24, 48, 64, 128, 160, 256]``, strides
``[1, 2, 2, 2, 1, 2]`` (reference ops: fused-MBConv x3 then MBConv x3 with SE 0.25), head
1x1 conv to 1280. Repeats are not searched (builders may scale them with ``depth_scale`` for
proxy tasks).

Per block ``i`` (shared by the block's layers; the first layer carries the stride):

- ``blocks.<i>.op``        {mbconv, fused_mbconv}
- ``blocks.<i>.expansion`` {1, 2, 4, 6}
- ``blocks.<i>.kernel``    {3, 5}
- ``blocks.<i>.se``        {0, 0.25}
- ``blocks.<i>.width``     {0.75, 1, 1.25} x the reference filters

and one network-wide ``activation`` {swish, relu} (EfficientNet uses one activation throughout).
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from spaces.core import Categorical, Ordinal, SearchSpace
from spaces.errors import SpaceError
from spaces.library.registry import register_space
from spaces.library.mnasnet import MobileBlockSpec, read

REPEATS: tuple[int, ...] = (2, 4, 4, 6, 9, 15)
FILTERS: tuple[int, ...] = (24, 48, 64, 128, 160, 256)
STRIDES: tuple[int, ...] = (1, 2, 2, 2, 1, 2)
STEM_FILTERS = 24
HEAD_FILTERS = 1280
OPS: tuple[str, ...] = ("mbconv", "fused_mbconv")
REFERENCE_OPS: tuple[str, ...] = ("fused_mbconv",) * 3 + ("mbconv",) * 3
REFERENCE_EXPANSIONS: tuple[int, ...] = (1, 4, 4, 4, 6, 6)
EXPANSIONS: tuple[int, ...] = (1, 2, 4, 6)
KERNELS: tuple[int, ...] = (3, 5)
SE_RATIOS: tuple[float, ...] = (0.0, 0.25)
WIDTHS: tuple[float, ...] = (0.75, 1.0, 1.25)
ACTIVATIONS: tuple[str, ...] = ("swish", "relu")
ARCH = {"arch": True}

__all__ = ["efficientnetv2", "decode", "block_key", "REPEATS", "FILTERS", "STRIDES", "OPS",
           "REFERENCE_OPS", "REFERENCE_EXPANSIONS", "EXPANSIONS", "KERNELS", "SE_RATIOS",
           "WIDTHS", "ACTIVATIONS", "STEM_FILTERS", "HEAD_FILTERS"]


def block_key(block: int, field: str) -> str:
    """Parameter name of one block field, e.g. ``blocks.3.kernel``."""
    return f"blocks.{block}.{field}"


@register_space("efficientnetv2", aliases=("efficientnet_v2",))
def efficientnetv2() -> SearchSpace:
    """The EfficientNetV2 per-block search space (6 blocks + a global activation).

    Defaults reproduce the EfficientNetV2-S block types and expansions.
    """
    params = []
    for i in range(len(REPEATS)):
        params += [
            Categorical(block_key(i, "op"), OPS, default=REFERENCE_OPS[i], meta=ARCH),
            Ordinal(block_key(i, "expansion"), EXPANSIONS, default=REFERENCE_EXPANSIONS[i], meta=ARCH),
            Ordinal(block_key(i, "kernel"), KERNELS, default=3, meta=ARCH),
            Ordinal(block_key(i, "se"), SE_RATIOS, default=0.25 if REFERENCE_OPS[i] == "mbconv" else 0.0, meta=ARCH),
            Ordinal(block_key(i, "width"), WIDTHS, default=1.0, meta=ARCH),
        ]
    params.append(Categorical("activation", ACTIVATIONS, default="swish", meta=ARCH))
    return SearchSpace(params, name="efficientnetv2")


def decode(config: Mapping[str, Any] | Any, depth_scale: float = 1.0) -> list[MobileBlockSpec]:
    """The 6 block specs of a complete ``efficientnetv2`` configuration.

    ``depth_scale`` multiplies the reference repeats (``ceil``, at least 1) for cheap proxies.
    Every parameter shapes the network, so all of them are read.
    """
    if not depth_scale > 0:
        raise SpaceError(f"depth_scale must be > 0, got {depth_scale!r}")
    act = read(config, "activation")
    specs = []
    for i, (repeats, filters, stride) in enumerate(zip(REPEATS, FILTERS, STRIDES)):
        specs.append(
            MobileBlockSpec(
                op=read(config, block_key(i, "op")),
                repeats=max(1, math.ceil(repeats * depth_scale)),
                filters=filters * float(read(config, block_key(i, "width"))),
                stride=stride,
                kernel=int(read(config, block_key(i, "kernel"))),
                expansion=int(read(config, block_key(i, "expansion"))),
                se=float(read(config, block_key(i, "se"))),
                activation=act,
            )
        )
    return specs
