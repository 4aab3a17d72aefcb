"""Reading and writing search-space files as text: a safe YAML loader (YAML-1.2 floats such as
``1e-5``, ``!!python/tuple`` sequences, duplicate keys rejected), JSON with duplicate-key
detection, plain-data conversion for dumping, and atomic writes.

Every parse or read error is a :class:`~spaces.errors.SpaceError` naming the file and line.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from spaces.errors import SpaceError
from spaces.values import frozen

__all__ = ["load_yaml", "load_json", "to_plain", "to_hashable", "dump_yaml", "dump_json",
           "source_of", "read_text", "write_text", "is_number", "YAML_SUFFIXES", "JSON_SUFFIXES"]

YAML_SUFFIXES = (".yaml", ".yml")
JSON_SUFFIXES = (".json",)


# --------------------------------------------------------------------------------------------
# YAML loading: safe, with YAML-1.2 style floats (``1e-5``) and ``!!python/tuple`` sequences
# --------------------------------------------------------------------------------------------
class _SpaceLoader(yaml.SafeLoader):
    """A ``SafeLoader`` that also reads ``1e-5`` as a float and ``!!python/tuple`` as a tuple.

    ConfigSpace's YAML writer emits ``!!python/tuple`` for ``ForbiddenInClause`` values; the
    unsafe loader is never needed to read it.
    """


_SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_tuple(loader: yaml.SafeLoader, node: yaml.Node) -> tuple:
    return tuple(loader.construct_sequence(node, deep=True))


_SpaceLoader.add_constructor("tag:yaml.org,2002:python/tuple", _construct_tuple)


def _construct_mapping_unique(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    """Like the safe mapping constructor, but a key given twice is an error (not overwritten)."""
    loader.flatten_mapping(node)
    seen: dict[Any, Any] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r}", key_node.start_mark)
            seen[key] = True
        except TypeError:
            pass
    return loader.construct_mapping(node, deep=True)


_SpaceLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping_unique)


def load_yaml(text: str, source: str) -> Any:
    """Parse YAML text safely; a syntax error becomes a SpaceError naming file and line."""
    try:
        return yaml.load(text, Loader=_SpaceLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpaceError(f"malformed YAML at {where}: {problem}", source=source) from None


def load_json(text: str, source: str) -> Any:
    """Parse JSON text; a syntax error becomes a SpaceError naming file and line."""
    dups: list[str] = []

    def pairs(items: list) -> dict:
        out: dict = {}
        for k, v in items:
            if k in out:
                dups.append(k)
            out[k] = v
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise SpaceError(
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}", source=source
        ) from None
    if dups:
        raise SpaceError(f"malformed JSON: duplicate keys {sorted(set(dups))}", source=source)
    return data


def to_plain(value: Any) -> Any:
    """Turn tuples into lists and numpy scalars into Python scalars (for JSON/safe YAML)."""
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value


def to_hashable(value: Any) -> Any:
    """Lists read from a file become tuples and mappings :class:`~spaces.values.FrozenDict`,
    so they can be choices of a parameter."""
    return frozen(value)


def dump_yaml(data: Any) -> str:
    """``data`` as block-style YAML (plain data only, keys in insertion order)."""
    return yaml.safe_dump(to_plain(data), sort_keys=False, default_flow_style=None, width=100)


def dump_json(data: Any) -> str:
    """``data`` as indented JSON with a final newline."""
    return json.dumps(to_plain(data), indent=2, allow_nan=True) + "\n"


def source_of(path: str | Path | None) -> str:
    """The name used for ``path`` in error messages."""
    return str(path) if path is not None else "<dict>"


def read_text(path: str | Path) -> str:
    """The file's UTF-8 text; SpaceError naming the file when it is missing or unreadable."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError("search-space file not found", source=str(path)) from None
    except OSError as exc:
        raise SpaceError(f"cannot read search-space file: {exc}", source=str(path)) from None


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` atomically (temporary file, then rename); parent folders are created."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


def is_number(v: Any) -> bool:
    """True for finite ints and floats (not booleans)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
