"""NAS-FPN search space (Ghiasi et al., "NAS-FPN: Learning Scalable Feature Pyramid Architecture
for Object Detection", CVPR 2019).

The neck takes backbone features C3..C7 (features 0..4, levels 3..7). It applies 2 intermediate
merging cells and then 5 output merging cells; every cell reads two distinct features among all
features so far, resamples both to its output level, merges them with ``sum`` or ``attention``
(coarser + finer * sigmoid(global max-pool of coarser)) and appends the result. The output cells'
levels are a permutation of 3..7; they form P3..P7. An intermediate cell no later cell consumes is
summed into the first output cell of its level. The cell stack is repeated N times (a builder
setting, 3 during search), the outputs of one stack feeding the next.

Encoding (valid by construction; no forbidden clauses):

- ``cells.{i}.level`` (i = 0, 1): output level of intermediate cell i, in {4, 5, 6, 7}.
- ``cells.{i}.op`` / ``outputs.{k}.op``: ``sum`` or ``attention``.
- ``cells.{i}.inputs`` / ``outputs.{k}.inputs``: ONE categorical over the unordered pairs
  ``"a,b"`` (a < b, absolute feature indices) of distinct features so far (5 + i for intermediate
  cell i, 7 + k for output cell k).
- ``outputs.order.{k}`` (k = 0..3): Lehmer code of the output levels, ``Int(0, 4 - k)`` picks the
  index among the not yet used levels of (3, 4, 5, 6, 7).

:func:`decode` turns a configuration into a list of :class:`CellSpec`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from spaces.core import Categorical, Int, Ordinal, SearchSpace
from spaces.library.spinenet import (
    ARCH_META,
    OUTPUT_LEVELS,
    _read,
    lehmer_decode,
    pair_choices,
    parse_pair,
    resolve_graph,
)

__all__ = ["CellSpec", "INPUT_LEVELS", "NASFPN_OPS", "decode", "nasfpn_space"]

INPUT_LEVELS: tuple[int, ...] = (3, 4, 5, 6, 7)
INTERMEDIATE_LEVELS: tuple[int, ...] = (4, 5, 6, 7)
NASFPN_OPS: tuple[str, ...] = ("sum", "attention")
NUM_INTERMEDIATE = 2


@dataclass(frozen=True)
class CellSpec:
    """One merging cell: output ``level``, merge ``op``, two input feature indices (0..4 are
    C3..C7, cell j is feature 5 + j), extra same-level features ``merged`` into an output cell.
    ``op`` is ``None`` for a dead cell."""

    level: int
    op: str | None
    inputs: tuple[int, int]
    is_output: bool = False
    merged: tuple[int, ...] = field(default=())


def nasfpn_space(num_intermediate: int = NUM_INTERMEDIATE) -> SearchSpace:
    """The NAS-FPN merging-cell space (see the module docstring)."""
    n_in = len(INPUT_LEVELS)
    params: list = []
    for i in range(num_intermediate):
        params.append(Ordinal(f"cells.{i}.level", INTERMEDIATE_LEVELS, default=4, meta=ARCH_META))
        params.append(Categorical(f"cells.{i}.op", NASFPN_OPS, meta=ARCH_META))
        pairs = pair_choices(n_in + i)
        params.append(Categorical(f"cells.{i}.inputs", pairs, default=pairs[-1], meta=ARCH_META))
    for k in range(len(OUTPUT_LEVELS) - 1):
        params.append(Int(f"outputs.order.{k}", 0, len(OUTPUT_LEVELS) - 1 - k, default=0,
                          meta=ARCH_META))
    for k in range(len(OUTPUT_LEVELS)):
        params.append(Categorical(f"outputs.{k}.op", NASFPN_OPS, meta=ARCH_META))
        pairs = pair_choices(n_in + num_intermediate + k)
        params.append(Categorical(f"outputs.{k}.inputs", pairs, default=pairs[-1],
                                  meta=ARCH_META))
    return SearchSpace(params, name="nasfpn")


def decode(config: Mapping[str, Any] | Any, num_intermediate: int = NUM_INTERMEDIATE
           ) -> list[CellSpec]:
    """Configuration (mapping or ``ArchConfig``) -> cell specs, intermediate cells first."""
    n_in = len(INPUT_LEVELS)
    levels = [int(_read(config, f"cells.{i}.level")) for i in range(num_intermediate)]
    inputs = [parse_pair(_read(config, f"cells.{i}.inputs")) for i in range(num_intermediate)]
    order = [int(_read(config, f"outputs.order.{k}")) for k in range(len(OUTPUT_LEVELS) - 1)]
    levels += lehmer_decode(order, OUTPUT_LEVELS)
    inputs += [parse_pair(_read(config, f"outputs.{k}.inputs")) for k in range(len(OUTPUT_LEVELS))]
    is_output = [False] * num_intermediate + [True] * len(OUTPUT_LEVELS)
    merged, live = resolve_graph(levels, inputs, is_output, n_in)
    specs = []
    for j, lvl in enumerate(levels):
        name = (f"cells.{j}.op" if j < num_intermediate
                else f"outputs.{j - num_intermediate}.op")
        op = str(_read(config, name)) if live[j] else None
        specs.append(CellSpec(lvl, op, inputs[j], is_output[j], merged[j]))
    return specs


def _register() -> None:
    from spaces.library.registry import register_space

    register_space("nasfpn")(lambda **kw: nasfpn_space(**kw))


_register()


def used_parameters(config: Mapping[str, Any], num_intermediate: int = NUM_INTERMEDIATE
                    ) -> set[str]:
    """Names of the parameters that shape the neck (for ``space.config_id(cfg, used)``)."""
    from spaces.library.spinenet import _Recorder

    rec = _Recorder(config)
    decode(rec, num_intermediate)
    return rec.used
