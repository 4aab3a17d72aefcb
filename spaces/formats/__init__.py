"""Search-space readers and writers, and :func:`load_space`.

Three file formats are understood:

- ``spaces.formats.native``: archtune's own YAML (``docs/spaces-yaml.md``);
- ``spaces.formats.configspace``: ConfigSpace 1.x JSON and YAML;
- ``spaces.formats.nni``: NNI search-space JSON.

Every reader builds all parameters, conditions and forbidden clauses first and constructs the
:class:`~spaces.core.SearchSpace` once, so a bad file never half-loads. Every problem is reported
as a :class:`~spaces.errors.SpaceError` whose message names the file, the parameter and the rule.

Example::

    from spaces.formats import load_space
    space = load_space("quicktune")            # a library space
    space = load_space("my_space.yaml")        # native or ConfigSpace YAML (auto-detected)
    space = load_space("search_space.json")    # ConfigSpace or NNI JSON (auto-detected)
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from spaces.errors import SpaceError

__all__ = ["load_space", "detect_format", "read", "write"]

_YAML_SUFFIXES = (".yaml", ".yml")
_JSON_SUFFIXES = (".json",)


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
    """Lists read from a file become tuples so they can be choices of a parameter."""
    if isinstance(value, list):
        return tuple(to_hashable(v) for v in value)
    return value


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(to_plain(data), sort_keys=False, default_flow_style=None, width=100)


def dump_json(data: Any) -> str:
    return json.dumps(to_plain(data), indent=2, allow_nan=True) + "\n"


def source_of(path: str | Path | None) -> str:
    return str(path) if path is not None else "<dict>"


def read_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpaceError("search-space file not found", source=str(path)) from None
    except OSError as exc:
        raise SpaceError(f"cannot read search-space file: {exc}", source=str(path)) from None


def write_text(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return p


# --------------------------------------------------------------------------------------------
# Error collection and one-shot construction
# --------------------------------------------------------------------------------------------
class Problems:
    """Collects problems while a reader converts a file; raise once at the end."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, problem: str) -> None:
        # core messages already start with "parameter 'x': ..."; do not say it twice
        if where and not problem.startswith(where):
            problem = f"{where}: {problem}"
        self.items.append(problem)

    def param(self, name: Any, problem: str) -> None:
        self.add(f"parameter {name!r}", problem)

    def guard(self, where: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; turn a ValueError/TypeError/KeyError into a recorded problem."""
        try:
            return fn()
        except SpaceError as exc:
            for v in exc.violations:
                self.add(where, v)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            self.add(where, _exc_text(exc))
        return None

    def raise_if_any(self) -> None:
        if self.items:
            raise SpaceError(self.items, source=self.source)


def _exc_text(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def build_space(
    source: str,
    params: Iterable[Any],
    conditions: Iterable[Any] = (),
    forbiddens: Iterable[Any] = (),
    name: str = "",
) -> Any:
    """Construct the SearchSpace once; check that the default configuration is valid.

    Any error raised by the core constructors is re-raised as a SpaceError naming ``source``.
    """
    from spaces.core import SearchSpace

    params, conditions, forbiddens = list(params), list(conditions), list(forbiddens)
    try:
        space = SearchSpace(params, conditions=conditions, forbiddens=forbiddens, name=name)
    except SpaceError as exc:
        raise SpaceError(exc.violations, source=source) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(_exc_text(exc), source=source) from None
    try:
        default = space.default()
    except SpaceError as exc:
        raise SpaceError(
            [f"default configuration is invalid: {v}" for v in exc.violations], source=source
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(f"default configuration is invalid: {_exc_text(exc)}",
                         source=source) from None
    for f in space.forbiddens:
        if f.is_forbidden(default):
            raise SpaceError(
                f"default configuration violates forbidden clause {f!r} "
                f"(parameters {', '.join(f.names)})",
                source=source,
            )
    return space


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# --------------------------------------------------------------------------------------------
# Format detection and load_space
# --------------------------------------------------------------------------------------------
def detect_format(path: str | Path, data: Any = None) -> str:
    """Return ``"native"``, ``"configspace"`` or ``"nni"`` for a file (by suffix and content)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if data is None:
        text = read_text(p)
        data = load_json(text, str(p)) if suffix in _JSON_SUFFIXES else load_yaml(text, str(p))
    return _detect_from_data(data, str(p))


def _detect_from_data(data: Any, source: str) -> str:
    if not isinstance(data, Mapping):
        raise SpaceError(
            f"a search-space file must hold a mapping at the top level, got "
            f"{type(data).__name__}", source=source,
        )
    if "hyperparameters" in data:
        return "configspace"
    if "parameters" in data:
        return "native"
    if data and all(isinstance(v, Mapping) and "_type" in v for v in data.values()):
        return "nni"
    raise SpaceError(
        "cannot tell the search-space format: expected a ConfigSpace file (key "
        "'hyperparameters'), an archtune file (key 'parameters') or an NNI file (every entry "
        "a mapping with '_type')",
        source=source,
    )


def read(path: str | Path, format: str | None = None) -> Any:
    """Read a search-space file of any supported format (auto-detected unless given)."""
    from spaces.formats import configspace, native, nni

    p = Path(path)
    source = str(p)
    text = read_text(p)
    if p.suffix.lower() in _JSON_SUFFIXES:
        data = load_json(text, source)
    else:
        data = load_yaml(text, source)
    fmt = format or _detect_from_data(data, source)
    readers = {"native": native.from_dict, "configspace": configspace.from_dict,
               "nni": nni.from_dict}
    if fmt not in readers:
        raise SpaceError(f"unknown format {fmt!r}; expected one of {sorted(readers)}",
                         source=source)
    return readers[fmt](data, source=source)


def write(space: Any, path: str | Path, format: str | None = None) -> Path:
    """Write a space; the format defaults from the suffix (.json -> ConfigSpace, .yaml -> native)."""
    from spaces.formats import configspace, native, nni

    p = Path(path)
    if format is None:
        format = "configspace" if p.suffix.lower() in _JSON_SUFFIXES else "native"
    writers = {"native": native.write, "configspace": configspace.write, "nni": nni.write}
    if format not in writers:
        raise SpaceError(f"unknown format {format!r}; expected one of {sorted(writers)}",
                         source=str(p))
    return writers[format](space, p)


def load_space(spec: Any) -> Any:
    """Return a SearchSpace from a library name, a file path, a dict, or a SearchSpace.

    - a ``SearchSpace`` is returned unchanged;
    - a ``dict``: an archtune native dict (``parameters:``), a ConfigSpace dict
      (``hyperparameters:``), an NNI dict, or the output of ``SearchSpace.to_dict()``;
    - a path (``str``/``Path``) to an existing file, or any string ending in .json/.yaml/.yml:
      the file, its format detected from suffix and content;
    - any other string: a library space name (``spaces.library.get_space``).
    """
    from spaces.core import SearchSpace

    if isinstance(spec, SearchSpace):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if isinstance(spec, Path):
        return read(spec)
    if isinstance(spec, str):
        p = Path(spec).expanduser()
        if p.suffix.lower() in _YAML_SUFFIXES + _JSON_SUFFIXES or p.is_file():
            return read(p)
        from spaces.library import get_space

        try:
            return get_space(spec)
        except SpaceError:
            raise
        except (KeyError, ValueError) as exc:
            raise SpaceError(
                f"{spec!r} is neither a search-space file nor a library space: {_exc_text(exc)}"
            ) from None
    raise SpaceError(
        f"cannot load a search space from {type(spec).__name__}; pass a library name, a file "
        "path, a dict or a SearchSpace"
    )


def _from_mapping(spec: Mapping) -> Any:
    from spaces.formats import configspace, native, nni

    source = "<dict>"
    if "hyperparameters" in spec:
        return configspace.from_dict(spec, source=source)
    if "parameters" in spec and isinstance(spec["parameters"], Mapping):
        return native.from_dict(spec, source=source)
    if spec and all(isinstance(v, Mapping) and "_type" in v for v in spec.values()):
        return nni.from_dict(spec, source=source)
    from spaces.core import SearchSpace

    try:
        return SearchSpace.from_dict(dict(spec))
    except SpaceError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(f"not a search-space dict: {_exc_text(exc)}", source=source) from None
