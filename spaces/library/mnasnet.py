"""MnasNet search space (Tan et al. 2019, factorised hierarchical space) over the MobileNetV2
reference skeleton: 7 blocks with reference repeats ``[1, 2, 3, 4, 3, 3, 1]``, filters
``[16, 24, 32, 64, 96, 160, 320]`` and strides ``[1, 2, 2, 2, 1, 2, 1]``.

Per block ``i`` (all layers of a block share the choices; the first layer carries the stride):

- ``blocks.<i>.repeats``   {r-1, r, r+1} with a minimum of 1. Rule for ``r = 1``: {1, 2}. A block is
  never removed, so every block's stride and output width survive (MnasNet's skip option is
  about the layer's skip connection, which the builder adds whenever shapes allow).
- ``blocks.<i>.op``        {conv, mbconv}: ``conv`` is a regular k x k conv-BN-ReLU layer,
  ``mbconv`` an inverted-residual bottleneck (expand 1x1, depthwise k x k, optional SE, project).
- ``blocks.<i>.expansion`` {1, 3, 6}      active iff op == mbconv
- ``blocks.<i>.se``        {0, 0.25}      active iff op == mbconv (squeeze-excitation ratio)
- ``blocks.<i>.kernel``    {3, 5}
- ``blocks.<i>.width``     {0.75, 1, 1.25} x the reference filters

Because expansion and SE are conditional, configurations that differ only in them while
``op == conv`` are the same configuration (same ``config_id``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from spaces.core import Categorical, Equals, Ordinal, SearchSpace
from spaces.library.registry import register_space

REPEATS: tuple[int, ...] = (1, 2, 3, 4, 3, 3, 1)
FILTERS: tuple[int, ...] = (16, 24, 32, 64, 96, 160, 320)
STRIDES: tuple[int, ...] = (1, 2, 2, 2, 1, 2, 1)
STEM_FILTERS = 32
HEAD_FILTERS = 1280
OPS: tuple[str, ...] = ("conv", "mbconv")
EXPANSIONS: tuple[int, ...] = (1, 3, 6)
KERNELS: tuple[int, ...] = (3, 5)
SE_RATIOS: tuple[float, ...] = (0.0, 0.25)
WIDTHS: tuple[float, ...] = (0.75, 1.0, 1.25)
ARCH = {"arch": True}

__all__ = ["mnasnet", "decode", "read", "block_key", "repeat_choices", "MobileBlockSpec",
           "REPEATS", "FILTERS", "STRIDES", "OPS", "EXPANSIONS", "KERNELS", "SE_RATIOS",
           "WIDTHS", "STEM_FILTERS", "HEAD_FILTERS"]


def block_key(block: int, field: str) -> str:
    """Parameter name of one block field, e.g. ``blocks.3.kernel``."""
    return f"blocks.{block}.{field}"


def repeat_choices(reference: int) -> tuple[int, ...]:
    """{r-1, r, r+1} without values below 1 (so r = 1 gives (1, 2))."""
    return tuple(v for v in (reference - 1, reference, reference + 1) if v >= 1)


@register_space("mnasnet")
def mnasnet() -> SearchSpace:
    """The MnasNet per-block search space over the MobileNetV2 skeleton (7 blocks)."""
    params, conditions = [], []
    for i, r in enumerate(REPEATS):
        params += [
            Ordinal(block_key(i, "repeats"), repeat_choices(r), default=r, meta=ARCH),
            Categorical(block_key(i, "op"), OPS, default="mbconv", meta=ARCH),
            Ordinal(block_key(i, "expansion"), EXPANSIONS, default=6, meta=ARCH),
            Ordinal(block_key(i, "kernel"), KERNELS, default=3, meta=ARCH),
            Ordinal(block_key(i, "se"), SE_RATIOS, default=0.0, meta=ARCH),
            Ordinal(block_key(i, "width"), WIDTHS, default=1.0, meta=ARCH),
        ]
        for field in ("expansion", "se"):
            conditions.append(Equals(block_key(i, field), block_key(i, "op"), "mbconv"))
    return SearchSpace(params, conditions=conditions, name="mnasnet")


@dataclass(frozen=True)
class MobileBlockSpec:
    """One searched block (a stage of ``repeats`` identical layers) of a mobile network.

    ``filters`` is the reference width times the block's width multiplier, before any global
    width scaling or rounding by the builder. ``expansion`` and ``se`` are 1 and 0 for ops that
    do not use them.
    """

    op: str
    repeats: int
    filters: float
    stride: int
    kernel: int
    expansion: int = 1
    se: float = 0.0
    activation: str = "relu"


def read(config: Any, name: str) -> Any:
    """``config.pick(name)`` for an :class:`~spaces.tree.ArchConfig` (records the read), else
    ``config[name]``."""
    pick = getattr(config, "pick", None)
    return pick(name) if callable(pick) else config[name]


def decode(config: Mapping[str, Any] | Any) -> list[MobileBlockSpec]:
    """The 7 block specs of a complete ``mnasnet`` configuration.

    Reads (through ``ArchConfig.pick`` when given one) exactly the parameters that shape the
    network: expansion and SE only for ``mbconv`` blocks.
    """
    specs = []
    for i, (filters, stride) in enumerate(zip(FILTERS, STRIDES)):
        op = read(config, block_key(i, "op"))
        mb = op == "mbconv"
        specs.append(
            MobileBlockSpec(
                op=op,
                repeats=int(read(config, block_key(i, "repeats"))),
                filters=filters * float(read(config, block_key(i, "width"))),
                stride=stride,
                kernel=int(read(config, block_key(i, "kernel"))),
                expansion=int(read(config, block_key(i, "expansion"))) if mb else 1,
                se=float(read(config, block_key(i, "se"))) if mb else 0.0,
                activation="relu",
            )
        )
    return specs
