"""Format detection and the entry points :func:`read`, :func:`write` and :func:`load_space`."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from spaces.errors import SpaceError
from spaces.formats import configspace, native, nni
from spaces.formats.problems import exc_text
from spaces.formats.textio import JSON_SUFFIXES, YAML_SUFFIXES, load_json, load_yaml, read_text
from spaces.space import SearchSpace

__all__ = ["load_space", "detect_format", "read", "write"]


def detect_format(path: str | Path, data: Any = None) -> str:
    """Return ``"native"``, ``"configspace"`` or ``"nni"`` for a file (by suffix and content)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if data is None:
        text = read_text(p)
        data = load_json(text, str(p)) if suffix in JSON_SUFFIXES else load_yaml(text, str(p))
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
    p = Path(path)
    source = str(p)
    text = read_text(p)
    if p.suffix.lower() in JSON_SUFFIXES:
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
    p = Path(path)
    if format is None:
        format = "configspace" if p.suffix.lower() in JSON_SUFFIXES else "native"
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
    if isinstance(spec, SearchSpace):
        return spec
    if isinstance(spec, Mapping):
        return _from_mapping(spec)
    if isinstance(spec, Path):
        return read(spec)
    if isinstance(spec, str):
        p = Path(spec).expanduser()
        if p.suffix.lower() in YAML_SUFFIXES + JSON_SUFFIXES or p.is_file():
            return read(p)
        from spaces.library import get_space

        try:
            return get_space(spec)
        except SpaceError:
            raise
        except (KeyError, ValueError) as exc:
            raise SpaceError(
                f"{spec!r} is neither a search-space file nor a library space: {exc_text(exc)}"
            ) from None
    raise SpaceError(
        f"cannot load a search space from {type(spec).__name__}; pass a library name, a file "
        "path, a dict or a SearchSpace"
    )


def _from_mapping(spec: Mapping) -> Any:
    source = "<dict>"
    if "hyperparameters" in spec:
        return configspace.from_dict(spec, source=source)
    if "parameters" in spec and isinstance(spec["parameters"], Mapping):
        return native.from_dict(spec, source=source)
    if spec and all(isinstance(v, Mapping) and "_type" in v for v in spec.values()):
        return nni.from_dict(spec, source=source)
    try:
        return SearchSpace.from_dict(dict(spec))
    except SpaceError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(f"not a search-space dict: {exc_text(exc)}", source=source) from None
