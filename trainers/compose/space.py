"""The search space of a network description (its ``hyper_parameters``).

Each entry maps a dotted path of the description to a domain:

- an archtune parameter mapping (``{type: int, low: 1, high: 4}``, ``{type: categorical,
  choices: [...]}``... as in ``docs/spaces-yaml.md``);
- a list: the values to choose from (numbers in increasing order become an ordinal, so local
  search steps to neighbouring values); a list of 0/1 at a path whose value is a 0/1 list of the
  same length is Vega's code: a binary code of that length with that many ones;
- a binary code ``{type: binary_code, range: [n]}`` (any ``n``-bit code) or ``range: [n, k]``
  (exactly ``k`` ones), Vega's ``doublechannel``/``downsample`` codes;
- Vega's list form ``[{key: path, type: INT|FLOAT|CATEGORY|BOOL|BINARY_CODE, range: [...]}]``.

A binary code is one categorical parameter whose values are strings such as ``"00101010"``;
:func:`decode_value` turns one back into the list the block reads. Defaults are the values
written in the description. Every parameter carries ``meta.arch = True``.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Mapping

from spaces.core import Categorical, Constant, Float, Int, Ordinal, Param, SearchSpace
from spaces.errors import SpaceError
from trainers.compose.description import Description, resolve_path
from trainers.errors import TrainerError

__all__ = ["MAX_CODE_BITS", "binary_codes", "decode_value", "description_space"]

MAX_CODE_BITS = 20
_META = {"arch": True}


def binary_codes(n: int, ones: int | None = None) -> tuple[str, ...]:
    """Every ``n``-bit code (as a string of 0/1), or those with exactly ``ones`` ones."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CODE_BITS:
        raise TrainerError(f"a binary code needs 1 <= n <= {MAX_CODE_BITS} positions, got {n!r}")
    if ones is None:
        return tuple("".join(bits) for bits in itertools.product("01", repeat=n))
    if isinstance(ones, bool) or not isinstance(ones, int) or not 0 <= ones <= n:
        raise TrainerError(f"the number of ones must be in 0..{n}, got {ones!r}")
    out = []
    for pos in itertools.combinations(range(n), ones):
        bits = ["0"] * n
        for p in pos:
            bits[p] = "1"
        out.append("".join(bits))
    return tuple(sorted(out))


def _code_default(current: Any, codes: tuple[str, ...]) -> str:
    if isinstance(current, (list, tuple)) and all(c in (0, 1) for c in current):
        s = "".join(str(int(c)) for c in current)
        if s in codes:
            return s
    return codes[0]


def _code_param(name: str, rng: Any, current: Any) -> Param:
    if not isinstance(rng, (list, tuple)) or len(rng) not in (1, 2):
        raise TrainerError(f"binary_code range must be [n] or [n, n_ones], got {rng!r}")
    n, ones = rng[0], (rng[1] if len(rng) == 2 else None)
    codes = binary_codes(n, ones)
    meta = {**_META, "binary_code": [n] if ones is None else [n, ones]}
    return Categorical(name, codes, default=_code_default(current, codes), meta=meta)


def _default(current: Any, values: tuple) -> Any:
    cur = tuple(current) if isinstance(current, list) else current
    return cur if cur in values else None


def _from_list(name: str, spec: list, current: Any) -> Param:
    if (isinstance(current, list) and len(current) == len(spec) and len(spec) > 1
            and all(v in (0, 1) and not isinstance(v, bool) for v in list(spec) + list(current))):
        return _code_param(name, [len(spec), int(sum(spec))], current)
    values = tuple(tuple(v) if isinstance(v, list) else v for v in spec)
    nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if nums and list(values) == sorted(set(values)):
        return Ordinal(name, values, default=_default(current, values), meta=dict(_META))
    return Categorical(name, values, default=_default(current, values), meta=dict(_META))


def _vega_entry(entry: Mapping, current: Any) -> Param:
    name, kind, rng = str(entry.get("key")), str(entry.get("type", "")).upper(), entry.get("range")
    if kind == "BINARY_CODE":
        return _code_param(name, rng, current)
    if kind in ("INT", "FLOAT") and isinstance(rng, (list, tuple)) and len(rng) == 2:
        cls = Int if kind == "INT" else Float
        low, high = rng
        ok = current is not None and low <= current <= high
        return cls(name, low, high, default=current if ok else None, meta=dict(_META))
    if kind in ("CATEGORY", "CATEGORICAL") and isinstance(rng, (list, tuple)) and rng:
        return _from_list(name, list(rng), current)
    if kind in ("BOOL", "BOOLEAN"):
        return Categorical(name, (False, True), default=bool(current), meta=dict(_META))
    raise TrainerError(f"unknown type {entry.get('type')!r} with range {rng!r} (valid: INT, FLOAT, "
                     "CATEGORY, BOOL, BINARY_CODE)")


def _param(name: str, spec: Any, current: Any) -> Param:
    from spaces.formats.native import param_from_spec

    if isinstance(spec, Mapping) and str(spec.get("type", "")).lower() in ("binary_code",
                                                                           "binarycode"):
        extra = set(spec) - {"type", "range"}
        if extra:
            raise TrainerError(f"binary_code takes only 'range', got {sorted(extra)}")
        return _code_param(name, spec.get("range"), current)
    if isinstance(spec, list):
        return _from_list(name, spec, current)
    if isinstance(spec, Mapping):
        spec = dict(spec)
        if "default" not in spec and current is not None and not isinstance(current, list):
            spec["default"] = current
        p = param_from_spec(name, spec)
        return p if isinstance(p, Constant) else _with_arch(p)
    return Constant(name, tuple(spec) if isinstance(spec, list) else spec)


def _with_arch(p: Param) -> Param:
    import dataclasses

    return dataclasses.replace(p, meta={**(p.meta or {}), **_META})


def description_space(desc: Description) -> SearchSpace:
    """The :class:`SearchSpace` of ``desc.hyper_parameters`` (parameter name = dotted path).

    Raises:
        TrainerError: a domain that cannot be read, or a path that points nowhere.
    """
    hp = desc.hyper_parameters
    entries = [(str(e.get("key")), e) for e in hp] if isinstance(hp, list) else list(hp.items())
    params = []
    for path, spec in entries:
        current = resolve_path(desc.data, path, desc.source, where="hyper_parameters")
        try:
            params.append(_vega_entry(spec, current) if isinstance(hp, list)
                          else _param(path, spec, current))
        except (SpaceError, ValueError, TypeError) as exc:
            raise TrainerError(f"{desc.source}: hyper_parameters.{path}: {exc}") from None
    name = (desc.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
            if desc.source and not desc.source.startswith("<") else "network")
    return SearchSpace(params, name=name)


def decode_value(space: SearchSpace, name: str, value: Any) -> Any:
    """The description value for configuration ``value`` of parameter ``name`` (binary codes
    become lists of ints, tuples of a list field become lists)."""
    p = space.params.get(name) if name in space else None
    if p is not None and (p.meta or {}).get("binary_code") and isinstance(value, str):
        return [int(c) for c in value]
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and math.isfinite(value) and isinstance(p, Int):
        return int(value)
    return value
