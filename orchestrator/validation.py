"""Checks shared by the YAML spec files (experiments in :mod:`orchestrator.spec`, pipelines in
:mod:`orchestrator.pipeline_spec`).

Every problem is a :class:`~spaces.errors.SpecError` whose message starts with the file (or
``where``) and the dotted key: ``<file>: key 'searcher.type': <what is wrong>``.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from orchestrator.errors import SpecError

__all__ = ["type_name", "check_type", "key_error", "unknown_key", "require_mapping",
           "read_yaml", "spec_to_dict"]

_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "mapping",
               list: "list", type(None): "null"}


def type_name(tp: Any) -> str:
    """The YAML-facing name of a type or a tuple of types (``"integer or null"``)."""
    if isinstance(tp, tuple):
        return " or ".join(type_name(t) for t in tp)
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def check_type(value: Any, tp: Any) -> bool:
    """Whether ``value`` has type ``tp`` (a type or a tuple of types) as YAML users mean it:
    ``bool`` is never an ``int`` or a ``float``, and an ``int`` is a ``float``."""
    types = tp if isinstance(tp, tuple) else (tp,)
    for t in types:
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if t not in (int, float) and isinstance(value, t):
            return True
    return False


def key_error(where: str | None, key: str, msg: str) -> SpecError:
    """``SpecError("<where>: key '<key>': <msg>")`` (no ``<where>: `` prefix when ``where`` is
    empty)."""
    prefix = f"{where}: " if where else ""
    return SpecError(f"{prefix}key '{key}': {msg}")


def unknown_key(where: str | None, key: str, valid: list[str]) -> SpecError:
    """The error for an unknown (dotted) ``key``: the closest valid names, then all of them."""
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return key_error(where, key, f"unknown key{hint} Valid keys: {', '.join(sorted(valid))}")


def require_mapping(d: Any, where: str | None, what: str) -> None:
    """Raise SpecError unless the top level of a ``what`` spec (``"experiment"``, ...) is a
    mapping."""
    if not isinstance(d, Mapping):
        raise SpecError(f"{where or what}: the {what} must be a mapping of keys, "
                        f"got {type(d).__name__}")


def read_yaml(path_or_text: str | Path, what: str) -> tuple[Any, str | None]:
    """``(parsed YAML, absolute source path or None)`` of a ``what`` file (a ``Path``, or a
    one-line string ending in ``.yaml``/``.yml``) or of YAML text; an empty document is ``{}``."""
    source: str | None = None
    text = str(path_or_text)
    p = Path(text)
    if isinstance(path_or_text, Path) or ("\n" not in text and p.suffix in (".yaml", ".yml")):
        if not p.is_file():
            raise SpecError(f"{p}: {what} file not found")
        source = str(p.resolve())
        text = p.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{source or what}: not valid YAML: {e}") from None
    return data or {}, source


def spec_to_dict(spec: Any, plain: Callable[[Any], Any]) -> dict[str, Any]:
    """The fields of a spec dataclass except ``source``, nested spec dataclasses as mappings,
    each value passed through ``plain`` (which makes it YAML/JSON friendly)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(spec):
        if f.name == "source":
            continue
        v = getattr(spec, f.name)
        if dataclasses.is_dataclass(v):
            v = {sf.name: getattr(v, sf.name) for sf in dataclasses.fields(v)}
        out[f.name] = plain(v)
    return out
