"""Nested architecture spaces (Archai ``ArchParamTree`` semantics).

A tree is a nested dict whose leaves are :func:`choice` objects (decisions), :func:`repeat`
blocks, or plain values (constants, passed through untouched). Rules:

- the SAME choice object used in two places is ONE decision (one parameter);
- ``repeat(block, counts)`` adds the decision ``<path>.count``; block ``i`` lives under
  ``<path>.<i>.`` and is active only when ``<path>.count > i``; with ``share=False`` every copy
  has its own decisions, with ``share=True`` all copies share block 0's decisions;
- :class:`ArchConfig` records which parameters a model builder reads through ``pick`` so that
  ``space.config_id(cfg, used=cfg.used)`` ignores unread parameters.

Example::

    k = choice([3, 5, 7])
    tree = ArchTree({"stem": {"kernel_size": k}, "head_kernel": k,
                     "layers": repeat({"width": choice([16, 32])}, counts=[1, 2, 3])})
    space = tree.to_space()       # params: layers.0.width ... layers.count, stem.kernel_size
    cfg = tree.config(space.sample(0))
    n = len(cfg.pick("layers"))
"""
from __future__ import annotations

from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from spaces.core import Categorical, Condition, In, Ordinal, SearchSpace
from spaces.values import py_value
from spaces.errors import SpaceError, SpaceKeyError


class Choice:
    """One architecture decision over ``values``. Identity matters: reuse the object to share."""

    __slots__ = ("values", "name", "default", "ordered")

    def __init__(self, values: Iterable[Any], name: str | None = None, default: Any = None,
                 ordered: bool | None = None):
        vals = tuple(py_value(v) for v in values)
        if not vals:
            raise SpaceError(f"choice {name or ''}: values must not be empty")
        if default is not None and default not in vals:
            raise SpaceError(f"choice {name or ''}: default {default!r} is not one of {vals!r}")
        self.values = vals
        self.name = name
        self.default = default
        if ordered is None:
            ordered = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals) and \
                list(vals) == sorted(vals)
        self.ordered = ordered

    def __repr__(self) -> str:
        return f"choice({list(self.values)!r}" + (f", name={self.name!r}" if self.name else "") + ")"


class Repeat:
    """A block repeated a chosen number of times (see :func:`repeat`)."""

    __slots__ = ("block", "counts", "share")

    def __init__(self, block: Mapping[str, Any], counts: Sequence[int], share: bool = False):
        if not isinstance(block, Mapping):
            raise SpaceError(f"repeat: block must be a dict, got {type(block).__name__}")
        cs = []
        for c in counts:
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0:
                raise SpaceError(f"repeat: counts must be integers >= 0, got {list(counts)!r}")
            cs.append(int(c))
        if not cs or max(cs) < 1:
            raise SpaceError(f"repeat: counts must contain a value >= 1, got {list(counts)!r}")
        if len(set(cs)) != len(cs):
            raise SpaceError(f"repeat: counts contain duplicates: {list(counts)!r}")
        self.block = block
        self.counts = tuple(sorted(cs))
        self.share = bool(share)


def choice(values: Iterable[Any], name: str | None = None, default: Any = None) -> Choice:
    """A decision among ``values``; pass ``name`` to name the parameter explicitly."""
    return Choice(values, name=name, default=default)


def repeat(block: Mapping[str, Any], counts: Sequence[int], share: bool = False) -> Repeat:
    """Repeat ``block`` a chosen number of times (one of ``counts``); ``share=True`` makes all
    copies share one set of decisions."""
    return Repeat(block, counts, share)


# gates: tuple of (count_param_name, min_index) — active iff count > min_index for each
Gate = tuple


class ArchTree:
    """A nested architecture space; :meth:`to_space` flattens it to a :class:`SearchSpace`."""

    def __init__(self, tree: Mapping[str, Any], name: str = ""):
        if not isinstance(tree, Mapping):
            raise SpaceError(f"ArchTree {name!r}: tree must be a dict, got {type(tree).__name__}")
        self.tree = tree
        self.name = name
        self._space: SearchSpace | None = None
        # path -> ("param", name) | ("const", value) | ("dict", None) | ("repeat", count_name)
        self.lookup: dict[str, tuple[str, Any]] = {}
        self._build()

    # ---- flattening ----------------------------------------------------------------------------
    def _build(self) -> None:
        self._decl: dict[Any, dict] = {}  # key -> {"name", "choice", "gates"}
        self._order: list[Any] = []
        self._count_values: dict[str, tuple] = {}
        self._walk(self.tree, "", (), ())
        params = []
        conds: list[Condition] = []
        used_names: set[str] = set()
        for key in self._order:
            d = self._decl[key]
            ch: Choice = d["choice"]
            nm = d["name"]
            if nm in used_names:
                raise SpaceError(f"ArchTree {self.name!r}: parameter name {nm!r} is used twice")
            used_names.add(nm)
            meta = {"arch": True}
            if ch.ordered:
                params.append(Ordinal(nm, ch.values, default=ch.default, meta=meta))
            else:
                params.append(Categorical(nm, ch.values, default=ch.default, meta=meta))
            gates = d["gates"]
            if gates:
                cname, idx = gates[-1]
                counts = self._count_values[cname]
                conds.append(In(nm, cname, tuple(c for c in counts if c > idx)))
        self._params = params
        self._conds = conds

    def _declare(self, key: Any, ch: Choice, path: str, gates: tuple) -> str:
        d = self._decl.get(key)
        if d is None:
            self._decl[key] = {"name": ch.name or path, "choice": ch, "gates": gates}
            self._order.append(key)
            return ch.name or path
        # reused decision: active when any usage is active -> keep the common gates
        common = []
        for g1, g2 in zip(d["gates"], gates):
            if g1[0] != g2[0]:
                break
            common.append((g1[0], min(g1[1], g2[1])))
            if g1[1] != g2[1]:
                break
        d["gates"] = tuple(common)
        return d["name"]

    def _walk(self, node: Any, path: str, gates: tuple, scope: tuple) -> None:
        if isinstance(node, Mapping):
            if path:
                self.lookup[path] = ("dict", None)
            for k, v in node.items():
                if not isinstance(k, str) or not k or "." in k:
                    raise SpaceError(
                        f"ArchTree {self.name!r}: key {k!r} at {path or '<root>'!r} must be a "
                        "non-empty string without '.'")
                self._walk(v, f"{path}.{k}" if path else k, gates, scope)
        elif isinstance(node, Choice):
            if not path:
                raise SpaceError(f"ArchTree {self.name!r}: the root must be a dict")
            nm = self._declare((id(node), scope), node, path, gates)
            self.lookup[path] = ("param", nm)
        elif isinstance(node, Repeat):
            cname = f"{path}.count"
            cnt = Choice(node.counts, ordered=True)
            self._declare((id(node), scope, "count"), cnt, cname, gates)
            self._count_values[cname] = node.counts
            self.lookup[path] = ("repeat", cname)
            self.lookup[cname] = ("param", cname)
            for i in range(max(node.counts)):
                sub_scope = scope if node.share else scope + ((id(node), i),)
                self._walk(node.block, f"{path}.{i}", gates + ((cname, i),), sub_scope)
        else:
            self.lookup[path] = ("const", node)

    # ---- public API ----------------------------------------------------------------------------
    def to_space(self) -> SearchSpace:
        if self._space is None:
            self._space = SearchSpace(self._params, self._conds, name=self.name)
        return self._space

    def num_archs_upper_bound(self) -> int | float:
        """Archai's ``num_archs``: the product of every decision's number of values."""
        return self.to_space().size_upper_bound()

    def num_archs(self) -> int | float:
        """Exact number of distinct architectures (inactive decisions ignored)."""
        return self.to_space().size()

    def config(self, values: Mapping[str, Any]) -> "ArchConfig":
        """Wrap a flat configuration of :meth:`to_space` as a navigable :class:`ArchConfig`."""
        return ArchConfig(values, tree=self)

    def sample_config(self, rng: np.random.Generator | int | None = None) -> "ArchConfig":
        return self.config(self.to_space().sample(rng))


class ArchConfig:
    """A configuration read through :meth:`pick`, which records every parameter read.

    Without a tree, navigation uses dotted prefixes of the flat config (``pick("layers")``
    returns an :class:`ArchConfigList` when ``layers.count`` exists, a sub-config when keys start
    with ``layers.``). With a tree, shared decisions and constants resolve as in the tree.
    """

    def __init__(self, config: Mapping[str, Any], tree: ArchTree | None = None, prefix: str = "",
                 _used: set[str] | None = None):
        self.config = dict(config)
        self.tree = tree
        self.prefix = prefix
        self._used: set[str] = _used if _used is not None else set()

    @property
    def used(self) -> set[str]:
        """Names of the parameters read so far (shared with sub-configs)."""
        return set(self._used)

    def _sub(self, prefix: str) -> "ArchConfig":
        return ArchConfig(self.config, self.tree, prefix, self._used)

    def pick(self, name: str) -> Any:
        full = self.prefix + str(name)
        if self.tree is not None:
            entry = self.tree.lookup.get(full)
            if entry is None:
                raise SpaceKeyError(self._unknown(name))
            kind, val = entry
            if kind == "const":
                return val
            if kind == "dict":
                return self._sub(full + ".")
            if kind == "repeat":
                return self._repeat(full, val)
            if val not in self.config:
                raise SpaceKeyError(f"parameter {val!r} (at {full!r}) is inactive in this configuration")
            self._used.add(val)
            return self.config[val]
        if full in self.config:
            self._used.add(full)
            return self.config[full]
        if full + ".count" in self.config:
            return self._repeat(full, full + ".count")
        if any(k.startswith(full + ".") for k in self.config):
            return self._sub(full + ".")
        raise SpaceKeyError(self._unknown(name))

    def _repeat(self, path: str, count_name: str) -> "ArchConfigList":
        if count_name not in self.config:
            raise SpaceKeyError(f"repeat count {count_name!r} is inactive in this configuration")
        self._used.add(count_name)
        n = int(self.config[count_name])
        return ArchConfigList([self._sub(f"{path}.{i}.") for i in range(n)])

    def _unknown(self, name: str) -> str:
        keys = sorted({k[len(self.prefix):].split(".")[0] for k in self.config
                       if k.startswith(self.prefix)})
        if self.tree is not None:
            keys = sorted({p[len(self.prefix):].split(".")[0] for p in self.tree.lookup
                           if p.startswith(self.prefix)})
        return f"{name!r} is not in this configuration (at {self.prefix or '<root>'!r}); keys: {keys}"

    def __getitem__(self, name: str) -> Any:
        return self.pick(name)

    def to_dict(self) -> dict:
        """The flat configuration values under this prefix (does not record usage)."""
        return {k[len(self.prefix):]: v for k, v in self.config.items() if k.startswith(self.prefix)}

    def arch_id(self, space: SearchSpace) -> str:
        """``space.config_id`` over the parameters read so far."""
        return space.config_id(self.config, used=self._used)

    def __repr__(self) -> str:
        return f"ArchConfig({self.to_dict()!r})"


class ArchConfigList(Sequence):
    """The active copies of a repeated block."""

    def __init__(self, items: list[ArchConfig]):
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, i):  # type: ignore[override]
        return self._items[i]

    def __iter__(self) -> Iterator[ArchConfig]:
        return iter(self._items)

    def __repr__(self) -> str:
        return f"ArchConfigList({self._items!r})"


__all__ = ["Choice", "Repeat", "choice", "repeat", "ArchTree", "ArchConfig", "ArchConfigList"]
