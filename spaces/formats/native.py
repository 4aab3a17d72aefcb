"""archtune's native YAML search-space format (documented in ``docs/spaces-yaml.md``).

Example::

    name: my-space
    parameters:
      lr:       {type: float, low: 1e-5, high: 1e-1, log: true, default: 1e-3}
      epochs:   {type: int, low: 1, high: 50, step: 1}
      opt:      {type: categorical, choices: [sgd, momentum, adam], weights: [1, 1, 2]}
      momentum: {type: ordinal, sequence: [0.8, 0.9, 0.99]}
      model:    {type: constant, value: resnet18}
    conditions:
      - {child: momentum, parent: opt, equals: momentum}
    forbidden:
      - all: [{name: opt, equals: adam}, {name: lr, in: [0.1]}]

``read(path)`` / ``write(space, path)`` work on files; ``from_dict`` / ``to_dict`` on the
parsed mapping.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from spaces import core
from spaces.errors import SpaceError
from spaces.formats.problems import Problems, build_space
from spaces.formats.textio import (
    dump_yaml, load_yaml, read_text, source_of, to_hashable, to_plain, write_text,
)

__all__ = ["read", "write", "from_dict", "to_dict", "loads", "dumps"]

FORMAT_VERSION = 1

# key allowed per type (besides "type" and "meta")
_KEYS = {
    "float": {"low", "high", "default", "log", "step"},
    "int": {"low", "high", "default", "log", "step"},
    "categorical": {"choices", "default", "weights"},
    "ordinal": {"sequence", "default"},
    "constant": {"value"},
    "bool": {"default"},
}
_TYPE_ALIASES = {
    "float": "float", "real": "float", "uniform_float": "float",
    "int": "int", "integer": "int", "uniform_int": "int",
    "categorical": "categorical", "choice": "categorical",
    "ordinal": "ordinal", "constant": "constant", "fixed": "constant",
    "bool": "bool", "boolean": "bool",
}
# condition keyword -> core class ; value key
_COND_OPS = {
    "equals": "Equals",
    "not_equals": "NotEquals",
    "in": "In",
    "greater_than": "GreaterThan",
    "less_than": "LessThan",
}
_REL_OPS = ("==", "!=", "<", ">", "<=", ">=")


# ----------------------------------------------------------------------------------- reading
def read(path: str | Path) -> core.SearchSpace:
    """Read an archtune YAML file (see ``docs/spaces-yaml.md``)."""
    source = str(path)
    return from_dict(load_yaml(read_text(path), source), source=source)


def loads(text: str, source: str = "<string>") -> core.SearchSpace:
    return from_dict(load_yaml(text, source), source=source)


def from_dict(data: Any, source: str | None = None) -> core.SearchSpace:
    """Build a SearchSpace from the parsed native mapping; every problem in one SpaceError."""
    src = source_of(source)
    if not isinstance(data, Mapping):
        raise SpaceError("an archtune space file must be a mapping with a 'parameters' key",
                         source=src)
    problems = Problems(src)
    unknown = set(data) - {"name", "parameters", "conditions", "forbidden", "forbiddens",
                           "format_version", "description"}
    if unknown:
        problems.add("top level", f"unknown keys {sorted(unknown)}; allowed: name, parameters, "
                     "conditions, forbidden, description, format_version")
    raw_params = data.get("parameters")
    if not isinstance(raw_params, Mapping) or not raw_params:
        problems.add("top level", "'parameters' must be a non-empty mapping of name -> spec")
        problems.raise_if_any()
    params = []
    for name, spec in raw_params.items():
        p = problems.guard(f"parameter {name!r}", lambda n=name, s=spec: param_from_spec(n, s))
        if p is not None:
            params.append(p)
    names = {str(n) for n in raw_params}

    conditions = []
    raw_conds = data.get("conditions") or []
    if not isinstance(raw_conds, list):
        problems.add("conditions", "must be a list")
        raw_conds = []
    for i, entry in enumerate(raw_conds):
        child = entry.get("child") if isinstance(entry, Mapping) else None
        where = f"condition #{i + 1}" + (f" (parameter {child!r})" if child else "")
        c = problems.guard(where, lambda e=entry: condition_from_spec(e, names))
        if c is not None:
            conditions.append(c)

    forbiddens = []
    raw_forb = data.get("forbidden", data.get("forbiddens")) or []
    if not isinstance(raw_forb, list):
        problems.add("forbidden", "must be a list")
        raw_forb = []
    for i, entry in enumerate(raw_forb):
        f = problems.guard(f"forbidden clause #{i + 1}",
                           lambda e=entry: forbidden_from_spec(e, names))
        if f is not None:
            forbiddens.append(f)
    problems.raise_if_any()
    return build_space(src, params, conditions, forbiddens, name=str(data.get("name") or ""))


def param_from_spec(name: Any, spec: Any) -> core.Param:
    """One ``parameters:`` entry -> core parameter.

    Shorthands: a list is a categorical, a scalar a constant.
    """
    if not isinstance(name, str) or not name:
        raise SpaceError(f"parameter names must be non-empty strings, got {name!r}")
    if isinstance(spec, list):
        return core.Categorical(name, tuple(to_hashable(v) for v in spec))
    if not isinstance(spec, Mapping):
        return core.Constant(name, to_hashable(spec))
    raw_type = spec.get("type")
    if raw_type is None:
        raise SpaceError(f"missing 'type' (one of {sorted(_KEYS)})")
    kind = _TYPE_ALIASES.get(str(raw_type).lower())
    if kind is None:
        raise SpaceError(f"unknown type {raw_type!r}; valid types: {', '.join(sorted(_KEYS))}")
    extra = set(spec) - _KEYS[kind] - {"type", "meta"}
    if extra:
        raise SpaceError(f"unknown keys {sorted(extra)} for type {kind!r}; "
                         f"allowed: {sorted(_KEYS[kind] | {'meta'})}")
    meta = spec.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise SpaceError(f"'meta' must be a mapping, got {meta!r}")
    meta = dict(meta) if meta else None
    default = to_hashable(spec.get("default"))
    if kind in ("float", "int"):
        for key in ("low", "high"):
            if key not in spec:
                raise SpaceError(f"type {kind!r} needs '{key}'")
        cls = core.Float if kind == "float" else core.Int
        kw: dict[str, Any] = {"default": default, "log": bool(spec.get("log", False)),
                              "meta": meta}
        if "step" in spec and spec["step"] is not None:
            kw["step"] = spec["step"]
        low, high = _num(spec["low"], "low", kind), _num(spec["high"], "high", kind)
        if default is not None:
            default = _num(default, "default", kind)
            kw["default"] = default
        return cls(name, low, high, **kw)
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise SpaceError("type 'categorical' needs a non-empty list 'choices'")
        weights = spec.get("weights")
        return core.Categorical(
            name, tuple(to_hashable(v) for v in choices), default=default,
            weights=tuple(weights) if weights is not None else None, meta=meta,
        )
    if kind == "ordinal":
        seq = spec.get("sequence")
        if not isinstance(seq, (list, tuple)) or not seq:
            raise SpaceError("type 'ordinal' needs a non-empty list 'sequence'")
        return core.Ordinal(name, tuple(to_hashable(v) for v in seq), default=default, meta=meta)
    if kind == "bool":
        return core.Categorical(name, (False, True),
                                default=False if default is None else default, meta=meta)
    if "value" not in spec:
        raise SpaceError("type 'constant' needs 'value'")
    return core.Constant(name, to_hashable(spec["value"]), meta=meta)


def _num(value: Any, key: str, kind: str) -> Any:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise SpaceError(f"'{key}' must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpaceError(f"'{key}' must be a number, got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            raise SpaceError(f"'{key}' must be an integer for type 'int', got {value!r}")
        return int(value)
    return float(value)


def condition_from_spec(entry: Any, names: set[str], child: str | None = None) -> Any:
    """One ``conditions:`` entry -> core condition.

    ``{child, parent, <op>: value}`` with op in equals/not_equals/in/greater_than/less_than,
    or ``{child, all: [...]}`` (AND) / ``{child, any: [...]}`` (OR) of such entries (their
    ``child`` may be omitted).
    """
    if not isinstance(entry, Mapping):
        raise SpaceError(f"a condition must be a mapping, got {entry!r}")
    child = entry.get("child", child)
    if child is None:
        raise SpaceError("condition has no 'child'")
    if child not in names:
        raise SpaceError(f"condition child {child!r} is not a parameter of this space")
    for key, cls_name in (("all", "And"), ("any", "Or")):
        if key in entry:
            subs = entry[key]
            if not isinstance(subs, list) or len(subs) < 2:
                raise SpaceError(f"'{key}' needs a list of at least two conditions")
            parts = [condition_from_spec(s, names, child) for s in subs]
            return getattr(core, cls_name)(*parts)
    parent = entry.get("parent")
    if parent is None:
        raise SpaceError(f"condition on {child!r} has no 'parent' (or 'all'/'any')")
    if parent not in names:
        raise SpaceError(f"condition on {child!r}: parent {parent!r} is not a parameter of "
                         "this space")
    ops = [k for k in _COND_OPS if k in entry]
    if len(ops) != 1:
        raise SpaceError(f"condition on {child!r} needs exactly one of {sorted(_COND_OPS)}, "
                         f"got {ops or 'none'}")
    op = ops[0]
    cls = getattr(core, _COND_OPS[op])
    value = entry[op]
    if op == "in":
        if not isinstance(value, (list, tuple)) or not value:
            raise SpaceError(f"condition on {child!r}: 'in' needs a non-empty list")
        return cls(child, parent, tuple(to_hashable(v) for v in value))
    return cls(child, parent, to_hashable(value))


def forbidden_from_spec(entry: Any, names: set[str]) -> Any:
    """One ``forbidden:`` entry -> core forbidden clause.

    ``{name, equals: v}``, ``{name, in: [...]}``, ``{all: [clause, ...]}`` or
    ``{left, op, right}`` with op one of ==, !=, <, >, <=, >=.
    """
    if not isinstance(entry, Mapping):
        raise SpaceError(f"a forbidden clause must be a mapping, got {entry!r}")
    if "all" in entry:
        subs = entry["all"]
        if not isinstance(subs, list) or not subs:
            raise SpaceError("'all' needs a non-empty list of clauses")
        return core.ForbiddenAnd(*[forbidden_from_spec(s, names) for s in subs])
    if "left" in entry or "right" in entry or "op" in entry:
        left, op, right = entry.get("left"), entry.get("op"), entry.get("right")
        for n in (left, right):
            if n not in names:
                raise SpaceError(f"relation names unknown parameter {n!r}")
        if op not in _REL_OPS:
            raise SpaceError(f"relation op {op!r} invalid; use one of {list(_REL_OPS)}")
        return core.ForbiddenRelation(left, op, right)
    name = entry.get("name")
    if name is None:
        raise SpaceError("forbidden clause needs 'name' (or 'all', or 'left'/'op'/'right')")
    if name not in names:
        raise SpaceError(f"forbidden clause names unknown parameter {name!r}")
    if "equals" in entry:
        return core.ForbiddenEquals(name, to_hashable(entry["equals"]))
    if "in" in entry:
        vals = entry["in"]
        if not isinstance(vals, (list, tuple)) or not vals:
            raise SpaceError(f"forbidden clause on {name!r}: 'in' needs a non-empty list")
        return core.ForbiddenIn(name, tuple(to_hashable(v) for v in vals))
    raise SpaceError(f"forbidden clause on {name!r} needs 'equals' or 'in'")


# ----------------------------------------------------------------------------------- writing
def to_dict(space: core.SearchSpace) -> dict:
    """The native mapping for ``space`` (inverse of :func:`from_dict`)."""
    out: dict[str, Any] = {}
    if space.name:
        out["name"] = space.name
    out["format_version"] = FORMAT_VERSION
    out["parameters"] = {name: param_to_spec(p) for name, p in space.params.items()}
    conds = [condition_to_spec(c) for c in space_conditions(space)]
    if conds:
        out["conditions"] = conds
    forbs = [forbidden_to_spec(f) for f in space.forbiddens]
    if forbs:
        out["forbidden"] = forbs
    return to_plain(out)


def dumps(space: core.SearchSpace) -> str:
    return dump_yaml(to_dict(space))


def write(space: core.SearchSpace, path: str | Path) -> Path:
    """Write ``space`` as archtune YAML to ``path``."""
    return write_text(path, dumps(space))


def param_to_spec(p: core.Param) -> dict:
    if isinstance(p, core.Float) or isinstance(p, core.Int):
        d: dict[str, Any] = {"type": "float" if isinstance(p, core.Float) else "int",
                             "low": p.low, "high": p.high, "default": p.default}
        if p.log:
            d["log"] = True
        step = getattr(p, "step", None)
        if step is not None and not (isinstance(p, core.Int) and step == 1):
            d["step"] = step
    elif isinstance(p, core.Categorical):
        d = {"type": "categorical", "choices": list(p.choices), "default": p.default}
        if p.weights is not None:
            d["weights"] = list(p.weights)
    elif isinstance(p, core.Ordinal):
        d = {"type": "ordinal", "sequence": list(p.sequence), "default": p.default}
    elif isinstance(p, core.Constant):
        d = {"type": "constant", "value": p.value}
    else:
        raise SpaceError(f"parameter {p.name!r}: type {type(p).__name__} cannot be written")
    if p.meta:
        d["meta"] = dict(p.meta)
    return d


def space_conditions(space: core.SearchSpace) -> list:
    conds = getattr(space, "conditions", None)
    if conds is None:
        conds = [c for n in space.params for c in space.conditions_for(n)]
    return list(conds)


def sub_conditions(cond: Any) -> tuple:
    for attr in ("conditions", "conds", "components", "clauses"):
        v = getattr(cond, attr, None)
        if v is not None and not callable(v):
            return tuple(v)
    raise SpaceError(f"cannot read the parts of condition {cond!r}")


def condition_to_spec(c: Any, top: bool = True) -> dict:
    kind = type(c).__name__
    d: dict[str, Any] = {"child": c.child} if top else {}
    if kind in ("And", "Or"):
        d["all" if kind == "And" else "any"] = [condition_to_spec(s, top=False)
                                                for s in sub_conditions(c)]
        return d
    op = {v: k for k, v in _COND_OPS.items()}.get(kind)
    if op is None:
        raise SpaceError(f"parameter {c.child!r}: condition type {kind} cannot be written")
    d["parent"] = c.parent
    d[op] = list(c.values) if kind == "In" else c.value
    return d


def forbidden_to_spec(f: Any) -> dict:
    kind = type(f).__name__
    if kind == "ForbiddenEquals":
        return {"name": f.name, "equals": f.value}
    if kind == "ForbiddenIn":
        return {"name": f.name, "in": list(f.values)}
    if kind == "ForbiddenAnd":
        return {"all": [forbidden_to_spec(s) for s in sub_conditions(f)]}
    if kind == "ForbiddenRelation":
        return {"left": f.left, "op": f.op, "right": f.right}
    raise SpaceError(f"forbidden clause {f!r} ({kind}) cannot be written to a file; only "
                     "equals/in/all/relation clauses can")
