"""NNI search-space JSON, read and written.

Reading (NNI ``_type`` -> archtune):

=================  ==========================================================================
``choice``         ``Categorical`` of the values (a single value -> ``Constant``); values
                   that are lists become tuples, mappings read-only dicts
                   (:class:`~spaces.values.FrozenDict`), e.g. NNI's batch-tuner lists of
                   whole configurations. Nested choice (NNI's rule: EVERY entry a mapping with
                   ``_name``): entries ``{"_name": N, key: {...}, ...}``; the choice's
                   values are the ``_name`` values and every nested parameter ``key`` becomes
                   ``"<parent>.<N>.<key>"``, active iff ``parent == N`` (recursively).
``layer_choice``   NNI classic NAS: ``Categorical`` of the candidate op names.
``input_choice``   NNI classic NAS ``{"candidates": [...], "n_chosen": n}``: choose ``n`` of
                   the candidates (``n`` an integer, a list of allowed counts, or null for
                   any number): a ``Categorical`` over the subsets, each a tuple in candidate
                   order of candidate keys (of candidate indices when keys repeat, as in
                   NNI's ``["", ""]``); at most :data:`MAX_SUBSETS` subsets.
``randint``        ``[lo, hi)`` -> ``Int(lo, hi - 1)`` (NNI's upper bound is exclusive).
``uniform``        ``Float(lo, hi)``.
``quniform``       ``[lo, hi, q]`` -> ``Int(lo, hi, step=q)`` when all three are integers,
                   else ``Float(lo, hi, step=q)``.
``loguniform``     ``Float(lo, hi, log=True)``.
``qloguniform``    ``[lo, hi, q]`` -> ``Int(lo, hi, log=True)`` when q == 1 and the bounds are
                   integers; otherwise ``Float(lo, hi, log=True)`` (archtune cannot quantise a
                   log range; ``q`` is kept in ``meta["nni"]`` and written back).
``normal``         ``[mu, sigma]`` -> ``Float(mu - 4 sigma, mu + 4 sigma)``.
``qnormal``        ``[mu, sigma, q]`` -> the same range with ``step=q`` (bounds on the q grid).
``lognormal``      ``[mu, sigma]`` -> ``Float(exp(mu - 4 sigma), exp(mu + 4 sigma), log=True)``.
``qlognormal``     as lognormal, ``q`` kept in meta.
=================  ==========================================================================

Any other ``_type`` (``factor``, ``mutable_layer``, ...) is refused naming the valid ones.
archtune samples these ranges uniformly (log-uniformly for the log types); the original
``_type``/``_value`` is kept in ``meta["nni"]`` so that ``write`` reproduces the file.

Writing (archtune -> NNI): ``layer_choice``/``input_choice`` parameters are written back as
read; ``Categorical``/``Ordinal`` -> ``choice``; a nested choice writes every value as
``{"_name": value, ...}``; ``Constant`` -> a
one-value ``choice``; ``Int`` -> ``randint [lo, hi + 1)`` (``quniform`` with a step,
``qloguniform [lo, hi, 1]`` when log); ``Float`` -> ``uniform``/``loguniform``/``quniform``.
Conditions: NNI can only express "active iff parent == value" through nested choices, so a
conditional parameter must have exactly one ``Equals`` condition on a ``Categorical`` parent;
it is written nested under that value (its key: the name with the ``"<parent>.<value>."``
prefix removed, else the full name; reading back gives ``"<parent>.<value>.<key>"``).
Forbidden clauses and other conditions cannot be written: ``write`` raises ``SpaceError``.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping

from spaces import core
from spaces.errors import SpaceError
from spaces.formats.problems import Problems, build_space
from spaces.formats.textio import (
    dump_json, is_number, load_json, read_text, source_of, to_hashable, to_plain, write_text,
)
from spaces.formats.native import space_conditions

__all__ = ["read", "write", "from_dict", "to_dict", "loads", "dumps", "SIGMAS"]

SIGMAS = 4.0  # normal ranges are cut at mu +- SIGMAS * sigma
MAX_SUBSETS = 10_000  # most subsets an input_choice may offer
_TYPES = ("choice", "randint", "uniform", "quniform", "loguniform", "qloguniform", "normal",
          "qnormal", "lognormal", "qlognormal", "layer_choice", "input_choice")


# ----------------------------------------------------------------------------------- reading
def read(path: str | Path) -> core.SearchSpace:
    """Read an NNI search-space JSON file."""
    source = str(path)
    return from_dict(load_json(read_text(path), source), source=source)


def loads(text: str, source: str = "<string>") -> core.SearchSpace:
    return from_dict(load_json(text, source), source=source)


def from_dict(data: Any, source: str | None = None, name: str = "") -> core.SearchSpace:
    """Build a SearchSpace from a parsed NNI search space; every problem in one SpaceError."""
    src = source_of(source)
    if not isinstance(data, Mapping) or not data:
        raise SpaceError("an NNI search space must be a non-empty mapping of name -> "
                         "{_type, _value}", source=src)
    problems = Problems(src)
    params: list[core.Param] = []
    conditions: list[Any] = []
    _read_block(data, "", None, problems, params, conditions)
    problems.raise_if_any()
    return build_space(src, params, conditions, (), name=name)


def _read_block(block: Mapping, prefix: str, cond: tuple[str, Any] | None, problems: Problems,
                params: list, conditions: list) -> None:
    for key, spec in block.items():
        if key == "_name":
            continue
        name = f"{prefix}{key}"
        before = len(params)
        problems.guard(f"parameter {name!r}",
                       lambda n=name, s=spec: _read_param(n, s, problems, params, conditions))
        if cond is not None and len(params) > before:
            conditions.append(core.Equals(name, cond[0], cond[1]))


def _read_param(name: str, spec: Any, problems: Problems, params: list,
                conditions: list) -> None:
    if not isinstance(spec, Mapping) or "_type" not in spec:
        raise SpaceError("must be a mapping with '_type' and '_value'")
    kind, value = spec.get("_type"), spec.get("_value")
    extra = set(spec) - {"_type", "_value"}
    if extra:
        raise SpaceError(f"unknown keys {sorted(extra)}; an NNI parameter has only "
                         "'_type' and '_value'")
    if kind not in _TYPES:
        raise SpaceError(f"unknown _type {kind!r}; valid: {', '.join(_TYPES)}")
    if kind == "input_choice":
        params.append(_input_choice(name, value))
        return
    if not isinstance(value, list) or not value:
        raise SpaceError(f"_value of {kind!r} must be a non-empty list, got {value!r}")
    if kind == "choice" and _is_nested(value):
        _nested_choice(name, value, problems, params, conditions)
    elif kind in ("choice", "layer_choice"):
        params.append(_plain_choice(name, kind, value))
    else:
        params.append(_numeric(name, kind, value))


def _is_nested(values: list) -> bool:
    """NNI's rule: a choice is a nested sub-space iff every entry is a mapping with '_name';
    otherwise its entries (mappings included) are plain values."""
    return all(isinstance(v, Mapping) and "_name" in v for v in values)


def _plain_choice(name: str, kind: str, values: list) -> core.Param:
    choices = tuple(to_hashable(v) for v in values)
    meta = {"nni": {"_type": kind, "_value": list(values)}} if kind == "layer_choice" else None
    if len(choices) == 1 and kind == "choice":
        return core.Constant(name, choices[0])
    return core.Categorical(name, choices, meta=meta)


def _nested_choice(name: str, values: list, problems: Problems, params: list,
                   conditions: list) -> None:
    labels = [to_hashable(v["_name"]) for v in values]
    if len({(type(v) is bool, v) for v in labels}) != len(labels):
        raise SpaceError(f"nested choice names are not unique: {labels}")
    params.append(core.Categorical(name, tuple(labels), meta={"nni": "nested"}))
    for v, label in zip(values, labels):
        _read_block(v, f"{name}.{label}.", (name, label), problems, params, conditions)


def _input_choice(name: str, value: Any) -> core.Param:
    """NNI classic-NAS ``input_choice``: choose ``n_chosen`` of ``candidates`` (an int, a list
    of allowed counts, or null for any number). The parameter is a categorical over the chosen
    subsets, each a tuple in candidate order: of candidate keys, or of candidate indices when
    the keys are not unique (as in NNI's ``["", ""]``)."""
    if not isinstance(value, Mapping) or "candidates" not in value:
        raise SpaceError("_value of 'input_choice' must be a mapping with 'candidates' and "
                         f"'n_chosen', got {value!r}")
    candidates = value["candidates"]
    if not isinstance(candidates, list) or not candidates:
        raise SpaceError(f"input_choice candidates must be a non-empty list, got {candidates!r}")
    k = len(candidates)
    n_chosen = value.get("n_chosen")
    counts = list(range(k + 1)) if n_chosen is None else (
        n_chosen if isinstance(n_chosen, list) else [n_chosen])
    if not counts or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= k
                             for n in counts):
        raise SpaceError(f"input_choice n_chosen must be null, an integer or a list of integers "
                         f"in [0, {k}], got {n_chosen!r}")
    total = sum(math.comb(k, n) for n in set(counts))
    if total > MAX_SUBSETS:
        raise SpaceError(f"input_choice has {total} possible subsets (more than {MAX_SUBSETS})")
    keys = [to_hashable(c) for c in candidates]
    unique = len({(type(c) is bool, c) for c in keys}) == k
    subsets = tuple(tuple(keys[i] if unique else i for i in combo)
                    for n in sorted(set(counts)) for combo in itertools.combinations(range(k), n))
    meta = {"nni": {"_type": "input_choice", "_value": dict(value)}}
    if len(subsets) == 1:
        return core.Constant(name, subsets[0], meta=meta)
    return core.Categorical(name, subsets, meta=meta)


def _numeric(name: str, kind: str, nums: list) -> core.Param:
    if not all(is_number(v) for v in nums):
        raise SpaceError(f"_value of {kind!r} must hold finite numbers, got {nums!r}")
    need = 3 if kind.startswith("q") else 2
    if len(nums) != need:
        raise SpaceError(f"_value of {kind!r} needs {need} numbers, got {len(nums)}")
    meta = {"nni": {"_type": kind, "_value": list(nums)}}
    if kind == "randint":
        lo, hi = nums
        if not all(float(v).is_integer() for v in nums):
            raise SpaceError(f"randint bounds must be integers, got {nums!r}")
        if int(hi) - 1 < int(lo):
            raise SpaceError(f"randint [{lo}, {hi}) is empty (upper bound is exclusive)")
        return core.Int(name, int(lo), int(hi) - 1)
    if kind == "uniform":
        return core.Float(name, float(nums[0]), float(nums[1]))
    if kind == "loguniform":
        return core.Float(name, float(nums[0]), float(nums[1]), log=True)
    if kind == "quniform":
        return _quniform(name, nums, meta)
    if kind == "qloguniform":
        lo, hi, q = nums
        if all(isinstance(v, int) for v in nums) and q == 1:
            return core.Int(name, lo, hi, log=True)
        return core.Float(name, float(lo), float(hi), log=True, meta=meta)
    return _normal(name, kind, nums, meta)


def _quniform(name: str, nums: list, meta: dict) -> core.Param:
    lo, hi, q = nums
    if q <= 0:
        raise SpaceError(f"q must be > 0, got {q}")
    on_grid = abs((hi - lo) / q - round((hi - lo) / q)) < 1e-9
    if all(isinstance(v, int) for v in nums):
        return core.Int(name, lo, hi, step=q if on_grid else 1, meta=None if on_grid else meta)
    if on_grid:
        return core.Float(name, float(lo), float(hi), step=float(q))
    # NNI clips to [lo, hi]; archtune keeps the range continuous, q in meta
    return core.Float(name, float(lo), float(hi), meta=meta)


def _normal(name: str, kind: str, nums: list, meta: dict) -> core.Param:
    mu, sigma = float(nums[0]), float(nums[1])
    if sigma <= 0:
        raise SpaceError(f"sigma must be > 0, got {sigma}")
    if kind in ("lognormal", "qlognormal"):
        lo, hi = math.exp(mu - SIGMAS * sigma), math.exp(mu + SIGMAS * sigma)
        return core.Float(name, lo, hi, log=True, meta=meta)
    lo, hi = mu - SIGMAS * sigma, mu + SIGMAS * sigma
    if kind == "normal":
        return core.Float(name, lo, hi, default=mu, meta=meta)
    q = float(nums[2])
    lo, hi = math.ceil(lo / q) * q, math.floor(hi / q) * q
    return core.Float(name, lo, hi, step=q, meta=meta)


# ----------------------------------------------------------------------------------- writing
def to_dict(space: core.SearchSpace) -> dict:
    """The NNI search-space dict for ``space``; SpaceError if NNI cannot express it."""
    problems = Problems(space.name or "<space>")
    if space.forbiddens:
        problems.add("forbidden", f"NNI search spaces cannot express forbidden clauses "
                     f"({len(space.forbiddens)} in this space)")
    placement: dict[str, tuple[str, Any]] = {}
    for c in space_conditions(space):
        if c.child in placement:
            problems.param(c.child, "has more than one condition; NNI can only nest a "
                           "parameter under one choice value")
            continue
        parent = space.params.get(getattr(c, "parent", None))
        if type(c).__name__ != "Equals" or not isinstance(parent, core.Categorical):
            problems.param(c.child, f"condition {c!r} cannot be written to NNI: only "
                           "'Equals' on a categorical parent (a nested choice) can")
            continue
        placement[c.child] = (c.parent, c.value)
    problems.raise_if_any()

    children: dict[tuple, list[str]] = {}
    for child, (parent, value) in placement.items():
        children.setdefault((parent, type(value) is bool, value), []).append(child)

    def entry(name: str) -> dict:
        p = space.params[name]
        if not isinstance(p, core.Categorical) or not (
                (p.meta or {}).get("nni") == "nested"
                or any((name, type(v) is bool, v) in children for v in p.choices)):
            return param_to_nni(p)
        values = []  # NNI nests only when every entry is a mapping with '_name'
        for v in p.choices:
            block: dict[str, Any] = {"_name": v}
            prefix = f"{name}.{v}."
            for k in children.get((name, type(v) is bool, v), []):
                block[k[len(prefix):] if k.startswith(prefix) else k] = entry(k)
            values.append(block)
        return {"_type": "choice", "_value": values}

    return to_plain({n: entry(n) for n in space.params if n not in placement})


def dumps(space: core.SearchSpace) -> str:
    return dump_json(to_dict(space))


def write(space: core.SearchSpace, path: str | Path) -> Path:
    """Write ``space`` as NNI search-space JSON; SpaceError if NNI cannot express it."""
    try:
        text = dumps(space)
    except SpaceError as exc:
        raise SpaceError(exc.violations, source=str(path)) from None
    return write_text(path, text)


def param_to_nni(p: core.Param) -> dict:
    original = (p.meta or {}).get("nni")
    if isinstance(original, Mapping) and "_type" in original:
        return {"_type": original["_type"], "_value": to_plain(original["_value"])}
    if isinstance(p, core.Categorical):
        return {"_type": "choice", "_value": list(p.choices)}
    if isinstance(p, core.Ordinal):
        return {"_type": "choice", "_value": list(p.sequence)}
    if isinstance(p, core.Constant):
        return {"_type": "choice", "_value": [p.value]}
    step = getattr(p, "step", None)
    if isinstance(p, core.Int):
        if p.log:
            if step not in (None, 1):
                raise SpaceError(f"parameter {p.name!r}: a log-scaled Int with step cannot be "
                                 "written to NNI")
            return {"_type": "qloguniform", "_value": [p.low, p.high, 1]}
        if step not in (None, 1):
            return {"_type": "quniform", "_value": [p.low, p.high, step]}
        return {"_type": "randint", "_value": [p.low, p.high + 1]}
    if isinstance(p, core.Float):
        if step is not None:
            if p.log:
                return {"_type": "qloguniform", "_value": [p.low, p.high, step]}
            return {"_type": "quniform", "_value": [p.low, p.high, step]}
        return {"_type": "loguniform" if p.log else "uniform", "_value": [p.low, p.high]}
    raise SpaceError(f"parameter {p.name!r}: type {type(p).__name__} cannot be written to NNI")
