"""SpineNet search spaces (Du et al., "SpineNet: Learning Scale-Permuted Backbone", CVPR 2020).

A SpineNet backbone is a stem (7x7/2 conv, 3x3/2 max-pool, two fixed level-2 bottleneck blocks;
features 0 and 1) followed by scale-permuted blocks. Every block has a level (stride ``2**level``),
a block type and two distinct parent features; it is appended to the feature list, so block ``i``
(0-based, in network order) is feature ``i + 2``. The last five blocks are output blocks at levels
L3..L7. An intermediate block that no later block consumes is summed into the first later output
block of the same level (if any); an intermediate block neither consumed nor merged is dead: the
builder drops it and its block type is an *unused* parameter.

Spaces (``get_space(name)``):

- ``spinenet``: intermediate levels allocated L2:1, L3:3, L4:5, L5:2 (11 blocks), level offset in
  {-1, 0, +1, +2}, block type in {bottleneck, residual}; output block type in {bottleneck, residual}.
- ``spinenet_v2``: allocation L2:1, L3:3, L4:5, L5:1 (10 blocks), offsets {-1, 0, +1}, bottleneck
  blocks only.
- ``spinenet_mbconv``: allocation L2:1, L3:1, L4:5, L5:4 (11 blocks), offsets {-1, 0, +1, +2},
  MBConv blocks only (expand 6, squeeze-excite 0.2).
- ``spinenet_scaling``: a fixed architecture under a 432-point grid of scaling knobs (image
  size, endpoint filters, filter scale, resample alpha, block repeats, head convs, head
  filters). The architecture is SpineNet-49 unless the build setting ``spinenet_base`` names a
  searched one (a mapping of a family's parameters plus ``family``; see :func:`base_specs`).
- ``spinenet49``: SpineNet-49 alone (no parameters), under any build settings.

Encoding (every sampled, mutated or crossed configuration is valid by construction; no
forbidden clauses, no rejection):

- Scale permutation of the level allocation: a permutation of a *multiset*, encoded bijectively
  with the combinatorial number system. Walking the allocation's levels in ascending order,
  parameter ``permutation.level{L}`` (an ``Int(0, C(r, c) - 1)``) is the lexicographic rank of the
  ``c`` positions that the ``c`` blocks of level ``L`` take among the ``r`` positions still free.
  The last level takes the remaining positions (no parameter). Each distinct level order has
  exactly one encoding, so ``space.size()`` counts distinct architectures (no Lehmer-code
  duplicates from equal levels). Rank 0 everywhere gives the ascending (ResNet-like) order.
- ``blocks.{i}.level_offset``: added to the permuted level of intermediate block ``i``.
- ``blocks.{i}.block_type``: only in spaces with more than one block type.
- ``blocks.{i}.parents``: ONE categorical over the unordered pairs ``"a,b"`` (``a < b``, absolute
  feature indices) of distinct features among the 4 most recent ones; absent when only one pair
  exists (block 0 always takes the two stem features ``"0,1"``).
- ``outputs.order.{k}`` for k = 0..3: a Lehmer code of the output levels: ``Int(0, 4 - k)`` picks
  the index among the not yet used levels of (3, 4, 5, 6, 7), in ascending order.
- ``outputs.{k}.block_type`` / ``outputs.{k}.parents``: as for intermediate blocks, with parents
  from *all* earlier features (stem, intermediate and earlier output blocks).

:func:`decode` turns a configuration into a list of :class:`BlockSpec` (intermediate blocks then
output blocks, in network order) and, given an :class:`~spaces.tree.ArchConfig`, reads exactly the
parameters that shape the network, so ``ArchConfig.used`` yields the architecture id.
"""
from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from spaces.core import Int, Ordinal, Categorical, SearchSpace

__all__ = [
    "BlockSpec",
    "FAMILIES",
    "OUTPUT_LEVELS",
    "SPINENET49_BLOCK_SPECS",
    "SpineNetFamily",
    "base_specs",
    "decode",
    "lehmer_decode",
    "pair_choices",
    "resolve_graph",
    "spinenet49_space",
    "spinenet_space",
    "unrank_combination",
]

OUTPUT_LEVELS: tuple[int, ...] = (3, 4, 5, 6, 7)
NUM_STEM_FEATURES = 2
STEM_LEVEL = 2
ARCH_META = {"arch": True}


@dataclass(frozen=True)
class BlockSpec:
    """One scale-permuted block.

    ``parents`` are absolute feature indices (0 and 1 are the stem blocks; block ``i`` is feature
    ``i + 2``). ``merged`` lists extra same-level features summed into an output block (filled by
    :func:`resolve_graph`). ``block_type`` is ``None`` for a dead block (never used downstream).
    """

    level: int
    block_type: str | None
    parents: tuple[int, int]
    is_output: bool = False
    merged: tuple[int, ...] = field(default=())


# The SpineNet-49 architecture found by the paper's search (TF Model Garden's published block
# specs; parent indices count the two stem blocks as features 0 and 1).
SPINENET49_BLOCK_SPECS: tuple[BlockSpec, ...] = tuple(
    BlockSpec(level, btype, parents, out)
    for level, btype, parents, out in [
        (2, "bottleneck", (0, 1), False),
        (4, "residual", (0, 1), False),
        (3, "bottleneck", (2, 3), False),
        (4, "bottleneck", (2, 4), False),
        (6, "residual", (3, 5), False),
        (4, "bottleneck", (3, 5), False),
        (5, "residual", (6, 7), False),
        (7, "residual", (6, 8), False),
        (5, "bottleneck", (8, 9), False),
        (5, "bottleneck", (8, 10), False),
        (4, "bottleneck", (5, 10), True),
        (3, "bottleneck", (4, 10), True),
        (5, "bottleneck", (7, 12), True),
        (7, "bottleneck", (5, 14), True),
        (6, "bottleneck", (12, 14), True),
    ]
)


@dataclass(frozen=True)
class SpineNetFamily:
    """The fixed structure of one SpineNet search space."""

    name: str
    allocation: tuple[tuple[int, int], ...]  # (level, count), ascending levels
    level_offsets: tuple[int, ...]
    block_types: tuple[str, ...]
    output_block_types: tuple[str, ...]
    recent: int = 4  # intermediate parents come from the `recent` most recent features

    @property
    def num_intermediate(self) -> int:
        return sum(c for _, c in self.allocation)


FAMILIES: dict[str, SpineNetFamily] = {
    "spinenet": SpineNetFamily("spinenet", ((2, 1), (3, 3), (4, 5), (5, 2)), (-1, 0, 1, 2),
                               ("bottleneck", "residual"), ("bottleneck", "residual")),
    "spinenet_v2": SpineNetFamily("spinenet_v2", ((2, 1), (3, 3), (4, 5), (5, 1)), (-1, 0, 1),
                                  ("bottleneck",), ("bottleneck",)),
    "spinenet_mbconv": SpineNetFamily("spinenet_mbconv", ((2, 1), (3, 1), (4, 5), (5, 4)),
                                      (-1, 0, 1, 2), ("mbconv",), ("mbconv",)),
}


# ----------------------------------------------------------------------------- encodings
def pair_choices(num_features: int, window: int | None = None) -> tuple[str, ...]:
    """Unordered pairs ``"a,b"`` (a < b) of distinct features among the last ``window`` ones."""
    first = 0 if window is None else max(0, num_features - window)
    return tuple(f"{a},{b}" for a, b in itertools.combinations(range(first, num_features), 2))


def parse_pair(value: str) -> tuple[int, int]:
    """``"3,5"`` -> ``(3, 5)``."""
    a, b = str(value).split(",")
    return int(a), int(b)


def unrank_combination(rank: int, n: int, k: int) -> tuple[int, ...]:
    """The ``rank``-th (0-based, lexicographic) ``k``-subset of ``range(n)``."""
    if not 0 <= rank < math.comb(n, k):
        raise ValueError(f"rank {rank} outside [0, C({n},{k}) = {math.comb(n, k)})")
    out = []
    start = 0
    for remaining in range(k, 0, -1):
        for x in range(start, n):
            block = math.comb(n - x - 1, remaining - 1)  # subsets whose next element is x
            if rank < block:
                out.append(x)
                start = x + 1
                break
            rank -= block
    return tuple(out)


def rank_combination(subset: Sequence[int], n: int) -> int:
    """Inverse of :func:`unrank_combination`."""
    subset = sorted(subset)
    k = len(subset)
    rank = 0
    start = 0
    for i, s in enumerate(subset):
        remaining = k - i
        for x in range(start, s):
            rank += math.comb(n - x - 1, remaining - 1)
        start = s + 1
    return rank


def lehmer_decode(code: Sequence[int], items: Sequence[Any]) -> list[Any]:
    """Permutation of ``items`` from a Lehmer code (``code[i]`` in ``[0, len(items) - 1 - i]``;
    the last index is implied)."""
    pool = list(items)
    out = []
    for c in code:
        out.append(pool.pop(int(c)))
    out.extend(pool)
    return out


def _read(cfg: Any, name: str) -> Any:
    """Read one value, through ``ArchConfig.pick`` when available (records usage)."""
    pick = getattr(cfg, "pick", None)
    return pick(name) if callable(pick) else cfg[name]


def resolve_graph(levels: Sequence[int], parents: Sequence[tuple[int, int]],
                  is_output: Sequence[bool], num_inputs: int
                  ) -> tuple[list[tuple[int, ...]], list[bool]]:
    """Merges and liveness of a scale-permuted graph.

    Blocks are processed in order; feature ``num_inputs + i`` is block ``i``. Each block counts
    one outgoing connection for each parent. An output block additionally absorbs every earlier
    *intermediate* block of its level with no outgoing connection yet (which then counts as
    connected). A block is live if it is an output or feeds (as parent or merge) a live block.

    Returns ``(merged, live)``: per block, the feature indices summed in besides its parents, and
    whether it is live.
    """
    n = len(levels)
    outgoing = [0] * (num_inputs + n)
    merged: list[tuple[int, ...]] = []
    for i in range(n):
        for p in parents[i]:
            outgoing[p] += 1
        extra: list[int] = []
        if is_output[i]:
            for j in range(i):
                f = num_inputs + j
                if not is_output[j] and outgoing[f] == 0 and levels[j] == levels[i]:
                    extra.append(f)
                    outgoing[f] += 1
        merged.append(tuple(extra))
    live = list(is_output)
    for i in range(n - 1, -1, -1):
        if live[i]:
            for f in (*parents[i], *merged[i]):
                if f >= num_inputs:
                    live[f - num_inputs] = True
    return merged, live


def with_merges(specs: Iterable[BlockSpec]) -> list[BlockSpec]:
    """Fill ``merged`` of a fixed block-spec list (e.g. SpineNet-49) and mark dead blocks."""
    specs = list(specs)
    merged, live = resolve_graph([s.level for s in specs], [s.parents for s in specs],
                                 [s.is_output for s in specs], NUM_STEM_FEATURES)
    return [replace(s, merged=m, block_type=s.block_type if alive else None)
            for s, m, alive in zip(specs, merged, live)]


# ----------------------------------------------------------------------------- space
def spinenet_space(family: str | SpineNetFamily) -> SearchSpace:
    """The search space of one SpineNet family (see the module docstring for the encoding)."""
    fam = FAMILIES[family] if isinstance(family, str) else family
    params: list = []
    free = fam.num_intermediate
    for level, count in fam.allocation[:-1]:
        ways = math.comb(free, count)
        if ways > 1:
            params.append(Int(f"permutation.level{level}", 0, ways - 1, default=0, meta=ARCH_META))
        free -= count
    n_int = fam.num_intermediate
    for i in range(n_int):
        params.append(Ordinal(f"blocks.{i}.level_offset", fam.level_offsets, default=0,
                              meta=ARCH_META))
        if len(fam.block_types) > 1:
            params.append(Categorical(f"blocks.{i}.block_type", fam.block_types, meta=ARCH_META))
        pairs = pair_choices(NUM_STEM_FEATURES + i, fam.recent)
        if len(pairs) > 1:
            params.append(Categorical(f"blocks.{i}.parents", pairs, default=pairs[-1],
                                      meta=ARCH_META))
    for k in range(len(OUTPUT_LEVELS) - 1):
        params.append(Int(f"outputs.order.{k}", 0, len(OUTPUT_LEVELS) - 1 - k, default=0,
                          meta=ARCH_META))
    for k in range(len(OUTPUT_LEVELS)):
        if len(fam.output_block_types) > 1:
            params.append(Categorical(f"outputs.{k}.block_type", fam.output_block_types,
                                      meta=ARCH_META))
        pairs = pair_choices(NUM_STEM_FEATURES + n_int + k)
        params.append(Categorical(f"outputs.{k}.parents", pairs, default=pairs[-1],
                                  meta=ARCH_META))
    return SearchSpace(params, name=fam.name)


def decode(config: Mapping[str, Any] | Any, family: str | SpineNetFamily = "spinenet"
           ) -> list[BlockSpec]:
    """Configuration -> block specs (intermediate blocks, then the 5 output blocks).

    ``config`` is a plain mapping or an ``ArchConfig`` (then only the parameters that shape the
    network are read: block types of dead blocks are not). Dead blocks get ``block_type=None``.
    """
    fam = FAMILIES[family] if isinstance(family, str) else family
    n_int = fam.num_intermediate
    # scale permutation of the allocation
    slots: list[int | None] = [None] * n_int
    free = list(range(n_int))
    for idx, (level, count) in enumerate(fam.allocation):
        ways = math.comb(len(free), count)
        if idx == len(fam.allocation) - 1 or ways == 1:
            rank = 0
        else:
            rank = int(_read(config, f"permutation.level{level}"))
        chosen = unrank_combination(rank, len(free), count)
        for c in chosen:
            slots[free[c]] = level
        free = [f for j, f in enumerate(free) if j not in set(chosen)]
    levels = [int(slots[i]) + int(_read(config, f"blocks.{i}.level_offset")) for i in range(n_int)]
    parents: list[tuple[int, int]] = []
    for i in range(n_int):
        pairs = pair_choices(NUM_STEM_FEATURES + i, fam.recent)
        parents.append(parse_pair(_read(config, f"blocks.{i}.parents") if len(pairs) > 1
                                  else pairs[0]))
    order = [int(_read(config, f"outputs.order.{k}")) for k in range(len(OUTPUT_LEVELS) - 1)]
    out_levels = lehmer_decode(order, OUTPUT_LEVELS)
    for k in range(len(OUTPUT_LEVELS)):
        parents.append(parse_pair(_read(config, f"outputs.{k}.parents")))
    is_output = [False] * n_int + [True] * len(OUTPUT_LEVELS)
    all_levels = levels + out_levels
    merged, live = resolve_graph(all_levels, parents, is_output, NUM_STEM_FEATURES)
    specs = []
    for i in range(len(all_levels)):
        if i < n_int:
            name, types = f"blocks.{i}.block_type", fam.block_types
        else:
            name, types = f"outputs.{i - n_int}.block_type", fam.output_block_types
        if not live[i]:
            btype = None
        elif len(types) > 1:
            btype = str(_read(config, name))
        else:
            btype = types[0]
        specs.append(BlockSpec(all_levels[i], btype, parents[i], is_output[i], merged[i]))
    return specs


def scaling_space() -> SearchSpace:
    """SpineNet-49 scaling grid: 2*2*3*3*3*2*2 = 432 configurations."""
    return SearchSpace([
        Ordinal("image_size", (512, 640), default=640),
        Ordinal("endpoint_filters", (192, 256), default=256, meta=ARCH_META),
        Ordinal("filter_scale", (0.8, 1.0, 1.2), default=1.0, meta=ARCH_META),
        Ordinal("resample_alpha", (0.75, 1.0, 1.25), default=1.0, meta=ARCH_META),
        Ordinal("block_repeats", (2, 3, 4), default=2, meta=ARCH_META),
        Ordinal("head_convs", (4, 5), default=4, meta=ARCH_META),
        Ordinal("head_filters", (192, 256), default=256, meta=ARCH_META),
    ], name="spinenet_scaling")


def spinenet49_space() -> SearchSpace:
    """The fixed SpineNet-49 architecture: a space without parameters (one point), so that
    ``arch: spinenet49`` trains it under any build settings (e.g. a reduced ``filter_scale``)."""
    return SearchSpace([], name="spinenet49")


def base_specs(base: Any = None) -> list[BlockSpec]:
    """Block specs of the architecture that ``spinenet_scaling`` scales.

    ``base`` is ``None`` or ``"spinenet49"`` (the paper's SpineNet-49), or a searched
    architecture: a mapping of a SpineNet family's parameters plus ``"family"`` (default
    ``"spinenet"``), e.g. the ``best_config`` of a pipeline's search or final stage.

    Raises:
        SpaceError: an unknown family, or parameters that are not a valid architecture of it.
    """
    from spaces.errors import SpaceError

    if base is None or base == "spinenet49":
        return list(SPINENET49_BLOCK_SPECS)
    if not isinstance(base, Mapping):
        raise SpaceError(f"spinenet_scaling base must be 'spinenet49' or a mapping of a searched "
                         f"SpineNet architecture, got {base!r}")
    family = str(base.get("family", "spinenet"))
    if family not in FAMILIES:
        raise SpaceError(f"unknown SpineNet family {family!r}; valid: {sorted(FAMILIES)}")
    space = spinenet_space(family)
    config = dict(space.default())
    config.update({k: v for k, v in base.items() if k != "family"})
    unknown = sorted(k for k in config if k not in space.params)
    if unknown:
        raise SpaceError(f"spinenet_scaling base: parameters {unknown} are not in space "
                         f"{family!r}")
    space.validate({k: v for k, v in config.items() if space.is_active(k, config)})
    return decode(config, family)


def _register() -> None:
    from spaces.library.registry import register_space

    for fam_name in FAMILIES:
        register_space(fam_name)(functools.partial(spinenet_space, fam_name))
    register_space("spinenet_scaling")(scaling_space)
    register_space("spinenet49")(spinenet49_space)


_register()


class _Recorder:
    """Minimal usage recorder (same ``pick`` protocol as ``spaces.tree.ArchConfig``)."""

    def __init__(self, config: Mapping[str, Any]):
        self._config = config
        self.used: set[str] = set()

    def pick(self, name: str) -> Any:
        self.used.add(name)
        return self._config[name]


def used_parameters(config: Mapping[str, Any], family: str | SpineNetFamily = "spinenet"
                    ) -> set[str]:
    """Names of the parameters that shape the network (``space.config_id(cfg, used)`` is then the
    architecture id: configurations differing only in dead blocks' types share it)."""
    rec = _Recorder(config)
    decode(rec, family)
    return rec.used
