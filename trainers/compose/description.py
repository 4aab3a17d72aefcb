"""Network descriptions: reading, validating and editing them by dotted path.

A description is a mapping (or a YAML file holding one)::

    modules: [init, layer, head]           # built in this order
    init:  {type: SmallInputInitialBlock, init_plane: 32}
    layer: {type: VariantLayer, in_plane: 32, expansion: 1, block: {type: BasicBlock},
            doublechannel: [0, 1, 1, 0, 1, 0, 0, 1], downsample: [1, 1, 0, 1, 0, 0, 0, 1]}
    head:  {type: LinearClassificationHead, base_channel: 512, num_class: 10}
    hyper_parameters:                      # optional: searchable fields by dotted path
      layer.doublechannel: {type: binary_code, range: [8, 4]}

Vega's own files are read as written: ``search_space: {type: FineGrainedSpace, modules: ...,
hyper_parameters: ...}`` is the same description, and ``!!python/tuple`` values are read by a safe
YAML loader. In an experiment file the description sits under ``network:`` (inline, or a path).

Every problem raises one :class:`~trainers.errors.TrainerError` naming the file, the path in the
description and the closest valid names, before anything is built or trained.
"""
from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from spaces.errors import SpaceError
from trainers.compose.registry import BLOCKS, BlockSpec, accepted_kwargs
from trainers.errors import TrainerError

__all__ = ["Description", "is_description", "load_description", "read_yaml_file", "resolve_path",
           "set_path"]

_WRAPPER_TYPES = ("finegrainedspace",)
_SPECIAL = {"modules", "hyper_parameters", "hyperparameters", "type"}


def _hint(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def is_description(data: Any) -> bool:
    """True for a mapping that looks like a network description (``modules:`` list, or Vega's
    ``search_space:`` wrapper around one)."""
    if not isinstance(data, Mapping):
        return False
    if isinstance(data.get("search_space"), Mapping):
        data = data["search_space"]
    return isinstance(data.get("modules"), list)


def read_yaml_file(path: str | Path) -> Any:
    """A YAML file read by archtune's safe loader (``!!python/tuple`` becomes a tuple)."""
    from spaces.formats.textio import load_yaml

    return load_yaml(Path(path).read_text(), str(path))


def _read(spec: Any, source: str | None) -> tuple[dict, str]:
    if isinstance(spec, Description):
        return copy.deepcopy(spec.data), spec.source
    if isinstance(spec, (str, Path)):
        path = Path(spec).expanduser()
        if not path.is_file():
            raise TrainerError(f"{path}: network description file not found")
        try:
            data = read_yaml_file(path)
        except SpaceError as exc:
            raise TrainerError(str(exc)) from None
        return data, str(path)
    if isinstance(spec, Mapping):
        return copy.deepcopy(dict(spec)), source or "<network>"
    raise TrainerError(f"{source or '<network>'}: a network description must be a mapping or a "
                       f"YAML path, got {type(spec).__name__}")


def _unwrap(data: Any, source: str) -> dict:
    if not isinstance(data, Mapping):
        raise TrainerError(f"{source}: a network description must be a mapping, got "
                           f"{type(data).__name__}")
    if "search_space" in data:
        inner = data["search_space"]
        if not isinstance(inner, Mapping):
            raise TrainerError(f"{source}: search_space: expected a mapping, got {inner!r}")
        kind = str(inner.get("type", "FineGrainedSpace"))
        if kind.lower() not in _WRAPPER_TYPES:
            raise TrainerError(f"{source}: search_space.type: {kind!r} is not a network "
                               "description; expected 'FineGrainedSpace'")
        data = inner
    data = dict(data)
    if "hyperparameters" in data and "hyper_parameters" not in data:
        data["hyper_parameters"] = data.pop("hyperparameters")
    return data


@dataclass
class Description:
    """A validated network description: ``data`` (plain values), its ``source`` and the
    top-level module names in build order."""

    data: dict
    source: str = "<network>"
    modules: list[str] = field(default_factory=list)

    @property
    def hyper_parameters(self) -> Any:
        return self.data.get("hyper_parameters") or {}

    def spec(self, name: str, data: Mapping | None = None) -> BlockSpec:
        """The :class:`BlockSpec` of top-level module ``name`` (of ``data`` when given)."""
        node = (data or self.data)[name]
        return to_spec(node, name, self.source)

    def with_values(self, values: Mapping[str, Any]) -> dict:
        """A copy of ``data`` with each dotted path in ``values`` set to its value."""
        out = copy.deepcopy(self.data)
        for path, value in values.items():
            set_path(out, path, value, self.source)
        return out


def to_spec(node: Any, path: str, source: str) -> BlockSpec:
    """A block mapping (``{type: ..., **kwargs}``) as a :class:`BlockSpec`, nested references
    and lists of references converted too."""
    if not isinstance(node, Mapping) or "type" not in node:
        raise TrainerError(f"{source}: {path}: expected a block {{type: Block, ...}}, got {node!r}")
    kwargs = {k: _convert(v, f"{path}.{k}", source) for k, v in node.items() if k != "type"}
    return BlockSpec(str(node["type"]), kwargs, path=path, source=source)


def _convert(value: Any, path: str, source: str) -> Any:
    if isinstance(value, Mapping) and "type" in value:
        return to_spec(value, path, source)
    if isinstance(value, list) and value and all(isinstance(v, Mapping) and "type" in v
                                                 for v in value):
        return [to_spec(v, f"{path}.{i}", source) for i, v in enumerate(value)]
    return value


def _check_spec(spec: BlockSpec, top: bool) -> None:
    spec.check(complete=top)
    if spec.type.lower() == "repeat":
        _check_repeat(spec)
    for key, value in spec.kwargs.items():
        for child in (value if isinstance(value, list) else [value]):
            if isinstance(child, BlockSpec):
                _check_spec(child, top=False)


def _check_repeat(spec: BlockSpec) -> None:
    n = spec.kwargs.get("num_reps")
    for key, value in (spec.kwargs.get("items") or {}).items():
        if isinstance(value, list) and isinstance(n, int) and len(value) > n:
            raise TrainerError(f"{spec.source}: {spec.path}.items.{key}: {len(value)} values "
                               f"for num_reps={n} repetitions; give at most {n} (a shorter list "
                               "reuses its last value)")


def load_description(spec: Any, source: str | None = None) -> Description:
    """Read and validate a description (mapping, YAML path or :class:`Description`).

    Checks: ``modules`` lists names that exist; every block type is registered; every keyword
    is an argument of its block; per-repetition lists fit ``num_reps``; every ``hyper_parameters``
    path points at a field. Raises :class:`TrainerError`.
    """
    raw, src = _read(spec, source)
    data = _unwrap(raw, src)
    modules = data.get("modules")
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise TrainerError(f"{src}: modules: expected a non-empty list of module names, got "
                           f"{modules!r}")
    blocks = [k for k in data if k not in _SPECIAL]
    for name in modules:
        if name not in data:
            raise TrainerError(f"{src}: modules: {name!r} has no entry{_hint(name, blocks)} "
                               f"(defined: {', '.join(blocks) or 'none'})")
    unused = [k for k in blocks if k not in modules]
    if unused:
        raise TrainerError(f"{src}: {unused[0]}: not listed in modules {modules}; add it there "
                           "or remove the entry")
    desc = Description(data=data, source=src, modules=list(modules))
    for name in modules:
        _check_spec(desc.spec(name), top=True)
    hp = desc.hyper_parameters
    paths = [e.get("key") for e in hp] if isinstance(hp, list) else list(hp)
    for path in paths:
        resolve_path(data, str(path), src, where="hyper_parameters")
    return desc


def _segment(node: Any, seg: str, path: str, source: str, where: str, last: bool) -> Any:
    prefix = f"{source}: {where}.{path}" if where else f"{source}: {path}"
    if isinstance(node, list):
        if not seg.isdigit() or int(seg) >= len(node):
            raise TrainerError(f"{prefix}: {seg!r} is not an index of a list of {len(node)}")
        return node[int(seg)]
    if not isinstance(node, Mapping):
        raise TrainerError(f"{prefix}: cannot go into {seg!r}: the value there is {node!r}")
    if seg in node:
        return node[seg]
    valid = [k for k in node if k not in ("type", "hyper_parameters")]
    if last and "type" in node and str(node["type"]) in BLOCKS:
        names, _, _ = accepted_kwargs(BLOCKS.get(str(node["type"])))
        if seg in names:
            return None
        valid = sorted(set(valid) | names)
    raise TrainerError(f"{prefix}: points nowhere: {seg!r} is not a field here"
                       f"{_hint(seg, valid)} (valid: {', '.join(map(str, valid))})")


def resolve_path(data: Mapping, path: str, source: str = "<network>", where: str = "") -> Any:
    """The value at dotted ``path`` (``None`` for a block argument left at its default).

    Raises:
        TrainerError: the path points nowhere (naming the closest fields).
    """
    segs = str(path).split(".")
    node: Any = data
    for i, seg in enumerate(segs):
        node = _segment(node, seg, path, source, where, last=i == len(segs) - 1)
    return node


def set_path(data: dict, path: str, value: Any, source: str = "<network>") -> None:
    """Set dotted ``path`` in ``data`` (in place); the path must resolve (see above)."""
    resolve_path(data, path, source)
    segs = str(path).split(".")
    node: Any = data
    for seg in segs[:-1]:
        node = node[int(seg)] if isinstance(node, list) else node[seg]
    last = segs[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
