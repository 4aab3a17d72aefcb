"""Checks shared by the YAML spec files (experiments in :mod:`orchestrator.spec`, pipelines in
:mod:`orchestrator.pipeline_spec`).

Every problem is a :class:`~spaces.errors.SpecError` whose message starts with the file (or
``where``) and the dotted key: ``<file>: key 'searcher.type': <what is wrong>``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError

__all__ = ["Option", "type_name", "check_type", "key_error", "unknown_key", "located",
           "check_options", "check_keys", "require_mapping", "read_yaml", "spec_to_dict"]

_TYPE_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", dict: "mapping",
               list: "list", tuple: "list", type(None): "null"}


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


@dataclass(frozen=True)
class Option:
    """One spec option: its YAML type (a type or a tuple of types, see :func:`check_type`), an
    optional numeric range (``low``/``high`` inclusive unless ``low_open``/``high_open``) and an
    optional set of ``choices``. ``None`` always passes the range and choice checks."""

    type: Any
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple = ()

    def rule(self) -> str:
        """The range or choice rule in words (``"must be in (0, 0.5]"``), ``""`` when none."""
        if self.choices:
            return "must be " + " or ".join(repr(c) for c in self.choices)
        if self.low is not None and self.high is not None:
            return (f"must be in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"must be {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"must be {'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def check(self, key: str, value: Any, where: str | None = None) -> None:
        """Raise :func:`key_error` when ``value`` has the wrong type or breaks the rule."""
        if not check_type(value, self.type):
            raise key_error(where, key, f"expected {type_name(self.type)}, got {value!r} "
                                        f"({type(value).__name__})")
        if value is None or isinstance(value, bool) or not (
                self.choices or isinstance(value, (int, float))):
            return
        ok = value in self.choices if self.choices else (
            (self.low is None or (value > self.low if self.low_open else value >= self.low))
            and (self.high is None
                 or (value < self.high if self.high_open else value <= self.high)))
        if not ok:
            raise key_error(where, key, f"{self.rule()}, got {value!r}")


def check_options(spec: Any, options: Mapping[str, Option], prefix: str = "",
                  where: str | None = None) -> None:
    """Check every field of ``spec`` named in ``options`` (errors name ``prefix.field``)."""
    for name, option in options.items():
        option.check(f"{prefix}{name}", getattr(spec, name), where)


@contextlib.contextmanager
def located(where: str | None) -> Iterator[None]:
    """Prefix a :class:`SpecError` raised inside the block with ``<where>: `` (once)."""
    try:
        yield
    except SpecError as e:
        if where and not str(e).startswith(f"{where}: "):
            raise SpecError(f"{where}: {e}") from None
        raise


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


def check_keys(d: Mapping[str, Any], cls: type, types: Mapping[str, Any], prefix: str = "",
               where: str | None = None) -> None:
    """Raise :func:`unknown_key` for a key of ``d`` that is no field of the dataclass ``cls``
    (its ``source`` field excepted), and :func:`key_error` for a value whose type is not
    ``types[key]`` (see :func:`check_type`); errors name ``prefix + key``."""
    valid = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
    for key, value in d.items():
        if key not in valid:
            raise unknown_key(where, f"{prefix}{key}", valid)
        tp = types[key]
        if not check_type(value, tp):
            raise key_error(where, f"{prefix}{key}", f"expected {type_name(tp)}, got {value!r} "
                                                     f"({type(value).__name__})")


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
        _reject_duplicate_keys(yaml.compose(text, Loader=yaml.SafeLoader), "")
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError(f"{source or what}: not valid YAML: {e}") from None
    except SpecError as e:
        raise SpecError(f"{source or what}: {e}") from None
    return data or {}, source


def _reject_duplicate_keys(node: yaml.Node | None, path: str) -> None:
    """SpecError naming the dotted key and both lines when a mapping gives a key twice (YAML
    parsers keep the last value silently)."""
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else None
            line = key_node.start_mark.line + 1
            if key is not None and key != "<<":
                if key in lines:
                    raise key_error(None, f"{path}{key}", f"is given twice (lines {lines[key]} "
                                                          f"and {line}); keep one")
                lines[key] = line
            _reject_duplicate_keys(value_node, f"{path}{key}." if key is not None else path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _reject_duplicate_keys(item, f"{path}{i}.")


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
