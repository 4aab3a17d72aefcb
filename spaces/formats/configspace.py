"""ConfigSpace 1.x serialisation (JSON and YAML), read and written without the library.

Mapping (ConfigSpace -> archtune):

- ``uniform_float`` / ``uniform_int`` -> ``Float`` / ``Int`` (``log`` kept);
- ``normal_*`` / ``beta_*`` -> ``Float`` / ``Int`` over their ``lower``/``upper`` bounds; the
  distribution (``mu``, ``sigma`` / ``alpha``, ``beta``) is kept in ``meta["configspace"]`` so
  that writing the space gives the same file back (archtune samples such a parameter uniformly);
- ``categorical`` (``weights``; legacy ``probabilities``) -> ``Categorical``;
- ``ordinal`` -> ``Ordinal``; ``constant`` -> ``Constant``;
- conditions ``EQ NEQ LT GT IN AND OR`` -> ``Equals NotEquals LessThan GreaterThan In And Or``;
- forbiddens ``EQUALS IN AND`` -> ``ForbiddenEquals ForbiddenIn ForbiddenAnd``;
  ``RELATION_{LT,LE,EQ,GT,GE}`` (and the legacy ``RELATION`` with ``lambda``) ->
  ``ForbiddenRelation``; ``OR`` is split into one archtune clause per alternative (forbidding
  ``A or B`` is forbidding ``A`` and forbidding ``B``); ``CLAUSE_{LT,LE,GT,GE}`` on a discrete
  parameter becomes ``ForbiddenIn`` of the matching values, on a continuous one a
  ``ForbiddenPredicate`` that is written back as the same clause.
- legacy keys accepted: ``json_format_version``, ``default`` (for ``default_value``), ``q``
  (becomes ``step``), ``probabilities`` (for ``weights``).

Writing (archtune -> ConfigSpace): an ``Int``/``Float`` with a ``step`` (ConfigSpace 1.x has no
quantisation) is written as an ``ordinal`` over its grid with ``meta["archtune"]`` recording
the original parameter, so ConfigSpace accepts exactly the same values and reading the file
back gives the stepped parameter again. Several conditions on one child are written as one
``AND``. A ``ForbiddenRelation`` with ``!=`` is written as ``OR`` of ``RELATION_LT`` and
``RELATION_GT``.
"""
from __future__ import annotations

import math
import operator
from pathlib import Path
from typing import Any, Mapping

from spaces import core
from spaces.errors import SpaceError
from spaces.values import choice_key
from spaces.formats.problems import Problems, build_space
from spaces.formats.textio import (
    dump_json, dump_yaml, load_json, load_yaml, read_text, source_of, to_hashable, to_plain, write_text,
)
from spaces.formats.native import space_conditions, sub_conditions

__all__ = ["read", "write", "from_dict", "to_dict", "loads", "dumps", "FORMAT_VERSION"]

FORMAT_VERSION = 0.4
MODULE_VERSION = "1.2.0"
MAX_GRID = 10_000  # largest stepped Int/Float written as an ordinal over its grid

_NUMERIC = {
    "uniform_float", "uniform_int", "normal_float", "normal_int", "beta_float", "beta_int",
}
_HP_TYPES = _NUMERIC | {"categorical", "ordinal", "constant"}
_COND_CLASSES = {"EQ": "Equals", "NEQ": "NotEquals", "LT": "LessThan", "GT": "GreaterThan"}
_REL_TYPES = {"RELATION_LT": "<", "RELATION_LE": "<=", "RELATION_EQ": "==",
              "RELATION_GT": ">", "RELATION_GE": ">="}
_CLAUSE_TYPES = {"CLAUSE_LT": "<", "CLAUSE_LE": "<=", "CLAUSE_GT": ">", "CLAUSE_GE": ">="}
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne}


class ValueClause:
    """Callable for a ``CLAUSE_*`` forbidden on a continuous parameter: ``name op value``.

    Used as the ``fn`` of a ``ForbiddenPredicate`` so the writer can emit the clause again.
    """

    def __init__(self, name: str, op: str, value: Any):
        self.name, self.op, self.value = name, op, value

    def __call__(self, *args: Any) -> bool:
        v = args[0]
        if isinstance(v, Mapping):
            v = v[self.name]
        return bool(_OPS[self.op](v, self.value))

    def __repr__(self) -> str:
        return f"{self.name} {self.op} {self.value!r}"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ValueClause) and (self.name, self.op, self.value) == (
            other.name, other.op, other.value)

    def __hash__(self) -> int:
        return hash((self.name, self.op, self.value))


# ----------------------------------------------------------------------------------- reading
def read(path: str | Path) -> core.SearchSpace:
    """Read a ConfigSpace JSON (``.json``) or YAML (other suffixes) file."""
    source = str(path)
    text = read_text(path)
    data = load_json(text, source) if str(path).lower().endswith(".json") else load_yaml(
        text, source)
    return from_dict(data, source=source)


def loads(text: str, source: str = "<string>") -> core.SearchSpace:
    """Parse ConfigSpace JSON or YAML text (JSON is valid YAML for the safe loader)."""
    text_s = text.lstrip()
    data = load_json(text, source) if text_s.startswith("{") else load_yaml(text, source)
    return from_dict(data, source=source)


def from_dict(data: Any, source: str | None = None) -> core.SearchSpace:
    """Build a SearchSpace from a parsed ConfigSpace dict; every problem in one SpaceError."""
    src = source_of(source)
    if not isinstance(data, Mapping) or not isinstance(data.get("hyperparameters"), list):
        raise SpaceError("a ConfigSpace file must be a mapping with a 'hyperparameters' list",
                         source=src)
    problems = Problems(src)
    params: dict[str, core.Param] = {}
    for i, item in enumerate(data["hyperparameters"]):
        name = item.get("name") if isinstance(item, Mapping) else None
        where = f"parameter {name!r}" if name is not None else f"hyperparameter #{i + 1}"
        if name is not None and name in params:
            problems.add(where, "defined twice")
            continue
        p = problems.guard(where, lambda it=item: hyperparameter_from_dict(it))
        if p is not None:
            params[p.name] = p

    conditions = []
    for i, item in enumerate(data.get("conditions") or []):
        child = item.get("child") if isinstance(item, Mapping) else None
        where = (f"parameter {child!r}" if child is not None else "condition") + \
            f" (condition #{i + 1})"
        c = problems.guard(where, lambda it=item: condition_from_dict(it, params))
        if c is not None:
            conditions.append(c)

    forbiddens = []
    for i, item in enumerate(data.get("forbiddens") or []):
        fs = problems.guard(f"forbidden #{i + 1}",
                            lambda it=item: forbiddens_from_dict(it, params))
        if fs is not None:
            forbiddens.extend(fs)
    problems.raise_if_any()
    return build_space(src, params.values(), conditions, forbiddens,
                       name=str(data.get("name") or ""))


def hyperparameter_from_dict(item: Any) -> core.Param:
    """One ConfigSpace hyperparameter dict as an archtune parameter (see the module
    docstring); SpaceError naming the problem."""
    if not isinstance(item, Mapping):
        raise SpaceError(f"a hyperparameter must be a mapping, got {item!r}")
    item = dict(item)
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise SpaceError("hyperparameter without a 'name'")
    kind = item.get("type")
    if kind not in _HP_TYPES:
        raise SpaceError(f"unknown type {kind!r}; valid types: {', '.join(sorted(_HP_TYPES))}")
    if "default_value" not in item and "default" in item:
        item["default_value"] = item["default"]
    meta = item.get("meta")
    if meta is not None and not isinstance(meta, Mapping):
        raise SpaceError(f"'meta' must be a mapping or null, got {meta!r}")
    meta = dict(meta) if meta else {}
    default = to_hashable(item.get("default_value"))
    if kind in _NUMERIC:
        return _numeric_from_dict(name, kind, item, default, meta)
    if kind == "categorical":
        choices = item.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise SpaceError("type 'categorical' needs a non-empty list 'choices'")
        weights = item.get("weights", item.get("probabilities"))
        return core.Categorical(
            name, tuple(to_hashable(c) for c in choices), default=default,
            weights=tuple(weights) if weights is not None else None, meta=meta or None,
        )
    if kind == "ordinal":
        return _ordinal_from_dict(name, item, default, meta)
    if "value" not in item:
        raise SpaceError("type 'constant' needs 'value'")
    return core.Constant(name, to_hashable(item["value"]), meta=meta or None)


def _numeric_from_dict(name: str, kind: str, item: Mapping, default: Any,
                       meta: dict) -> core.Param:
    is_int = kind.endswith("_int")
    for key in ("lower", "upper"):
        if key not in item:
            raise SpaceError(f"type {kind!r} needs '{key}'")
    lower, upper = _number(item["lower"], "lower", is_int), _number(item["upper"], "upper",
                                                                  is_int)
    if default is not None:
        default = _number(default, "default_value", is_int)
    if not kind.startswith("uniform"):
        dist = "normal" if kind.startswith("normal") else "beta"
        keys = ("mu", "sigma") if dist == "normal" else ("alpha", "beta")
        info = {"type": kind}
        for key in keys:
            if key not in item:
                raise SpaceError(f"type {kind!r} needs '{key}'")
            info[key] = float(item[key])
        meta["configspace"] = info
    kw: dict[str, Any] = {"default": default, "log": bool(item.get("log", False))}
    cls = core.Int if is_int else core.Float
    q = item.get("q")  # legacy quantisation: kept as step where the grid fits the range
    if q is not None and not kw["log"]:
        try:
            return cls(name, lower, upper, meta=meta or None,
                       step=int(q) if is_int else float(q), **kw)
        except ValueError:
            pass
    return cls(name, lower, upper, meta=meta or None, **kw)


def _ordinal_from_dict(name: str, item: Mapping, default: Any, meta: dict) -> core.Param:
    seq = item.get("sequence")
    if not isinstance(seq, (list, tuple)) or not seq:
        raise SpaceError("type 'ordinal' needs a non-empty list 'sequence'")
    arch = meta.pop("archtune", None)
    if isinstance(arch, Mapping) and arch.get("type") in ("int", "float"):
        # a stepped Int/Float written by archtune as an ordinal over its grid
        cls = core.Int if arch["type"] == "int" else core.Float
        return cls(name, arch["low"], arch["high"], default=default,
                   log=bool(arch.get("log", False)), step=arch["step"], meta=meta or None)
    if arch is not None:
        meta["archtune"] = arch
    return core.Ordinal(name, tuple(to_hashable(v) for v in seq), default=default,
                        meta=meta or None)


def _number(v: Any, key: str, is_int: bool) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise SpaceError(f"'{key}' must be a number, got {v!r}")
    if is_int:
        if float(v) != int(v):
            raise SpaceError(f"'{key}' must be an integer, got {v!r}")
        return int(v)
    return float(v)


def _param_of(params: Mapping[str, core.Param], name: Any, role: str) -> str:
    if name not in params:
        raise SpaceError(f"{role} {name!r} is not a hyperparameter of this space")
    return name


def condition_from_dict(item: Any, params: Mapping[str, core.Param],
                        child: str | None = None) -> Any:
    if not isinstance(item, Mapping):
        raise SpaceError(f"a condition must be a mapping, got {item!r}")
    kind = item.get("type")
    child = item.get("child", child)
    _param_of(params, child, "condition child")
    if kind in ("AND", "OR"):
        subs = item.get("conditions")
        if not isinstance(subs, list) or len(subs) < 2:
            raise SpaceError(f"{kind} needs a list of at least two 'conditions'")
        parts = [condition_from_dict(s, params, child) for s in subs]
        return (core.And if kind == "AND" else core.Or)(*parts)
    if kind == "IN":
        parent = _param_of(params, item.get("parent"), f"condition on {child!r}: parent")
        values = item.get("values")
        if not isinstance(values, (list, tuple)) or not values:
            raise SpaceError("IN needs a non-empty list 'values'")
        return core.In(child, parent, tuple(to_hashable(v) for v in values))
    if kind in _COND_CLASSES:
        parent = _param_of(params, item.get("parent"), f"condition on {child!r}: parent")
        if "value" not in item:
            raise SpaceError(f"{kind} needs 'value'")
        return getattr(core, _COND_CLASSES[kind])(child, parent, to_hashable(item["value"]))
    raise SpaceError(f"unknown condition type {kind!r}; valid: EQ, NEQ, LT, GT, IN, AND, OR")


def forbiddens_from_dict(item: Any, params: Mapping[str, core.Param]) -> list:
    """One ConfigSpace forbidden -> list of archtune clauses (OR is split, DNF)."""
    return [_and(conj) for conj in _dnf(item, params)]


def _and(conj: list) -> Any:
    return conj[0] if len(conj) == 1 else core.ForbiddenAnd(*conj)


def _dnf(item: Any, params: Mapping[str, core.Param]) -> list[list]:
    """Disjunctive normal form: a list of alternatives, each a list of atomic clauses."""
    if not isinstance(item, Mapping):
        raise SpaceError(f"a forbidden clause must be a mapping, got {item!r}")
    kind = item.get("type")
    if kind in ("AND", "OR"):
        subs = item.get("clauses")
        if not isinstance(subs, list) or not subs:
            raise SpaceError(f"forbidden {kind} needs a non-empty list 'clauses'")
        if kind == "OR" and len(subs) == 2 and all(isinstance(s, Mapping) for s in subs) and \
                {s.get("type") for s in subs} == {"RELATION_LT", "RELATION_GT"} and \
                len({(s.get("left"), s.get("right")) for s in subs}) == 1:
            # how archtune writes "left != right" (ConfigSpace has no RELATION_NE)
            left = _param_of(params, subs[0].get("left"), "forbidden relation: parameter")
            right = _param_of(params, subs[0].get("right"), "forbidden relation: parameter")
            return [[core.ForbiddenRelation(left, "!=", right)]]
        parts = [_dnf(s, params) for s in subs]
        if kind == "OR":
            return [alt for p in parts for alt in p]
        out: list[list] = [[]]
        for p in parts:
            out = [a + b for a in out for b in p]
        return out
    if kind in ("EQUALS", "IN"):
        name = _param_of(params, item.get("name"), "forbidden clause: parameter")
        if kind == "EQUALS":
            if "value" not in item:
                raise SpaceError(f"forbidden EQUALS on {name!r} needs 'value'")
            return [[core.ForbiddenEquals(name, to_hashable(item["value"]))]]
        values = item.get("values")
        if not isinstance(values, (list, tuple)) or not values:
            raise SpaceError(f"forbidden IN on {name!r} needs a non-empty list 'values'")
        return [[core.ForbiddenIn(name, tuple(to_hashable(v) for v in values))]]
    if kind in _REL_TYPES or kind == "RELATION":
        if kind == "RELATION":
            op = {"LT": "<", "EQ": "==", "GT": ">"}.get(item.get("lambda"))
            if op is None:
                raise SpaceError(f"legacy RELATION with unknown lambda {item.get('lambda')!r}")
        else:
            op = _REL_TYPES[kind]
        left = _param_of(params, item.get("left"), "forbidden relation: parameter")
        right = _param_of(params, item.get("right"), "forbidden relation: parameter")
        return [[core.ForbiddenRelation(left, op, right)]]
    if kind in _CLAUSE_TYPES:
        name = _param_of(params, item.get("name"), "forbidden clause: parameter")
        op, value = _CLAUSE_TYPES[kind], item.get("value")
        p = params[name]
        if p.is_discrete and math.isfinite(p.cardinality) and p.cardinality <= MAX_GRID:
            vals = tuple(v for v in p.values if _OPS[op](v, value))
            if not vals:
                return []
            return [[core.ForbiddenIn(name, vals)]]
        return [[core.ForbiddenPredicate((name,), ValueClause(name, op, value),
                                         f"{name} {op} {value!r}")]]
    raise SpaceError(f"unknown forbidden type {kind!r}; valid: EQUALS, IN, AND, OR, "
                     "RELATION_LT/LE/EQ/GT/GE, CLAUSE_LT/LE/GT/GE")


# ----------------------------------------------------------------------------------- writing
def to_dict(space: core.SearchSpace) -> dict:
    """The ConfigSpace 1.x dict for ``space`` (readable by ``ConfigurationSpace.from_json``)."""
    by_child: dict[str, list] = {}
    for c in space_conditions(space):
        by_child.setdefault(c.child, []).append(c)
    conditions = []
    for child, cs in by_child.items():
        if len(cs) == 1:
            conditions.append(condition_to_dict(cs[0], space))
        else:
            conditions.append({"type": "AND", "child": child,
                               "conditions": [condition_to_dict(c, space) for c in cs]})
    return to_plain({
        "name": space.name or None,
        "hyperparameters": [hyperparameter_to_dict(p) for p in space.params.values()],
        "conditions": conditions,
        "forbiddens": [forbidden_to_dict(f) for f in space.forbiddens],
        "python_module_version": MODULE_VERSION,
        "format_version": FORMAT_VERSION,
    })


def dumps(space: core.SearchSpace, yaml: bool = False) -> str:
    d = to_dict(space)
    return dump_yaml(d) if yaml else dump_json(d)


def write(space: core.SearchSpace, path: str | Path) -> Path:
    """Write ConfigSpace JSON (``.json``) or YAML (``.yaml``/``.yml``)."""
    is_yaml = str(path).lower().endswith((".yaml", ".yml"))
    return write_text(path, dumps(space, yaml=is_yaml))


def hyperparameter_to_dict(p: core.Param) -> dict:
    meta = dict(p.meta) if p.meta else {}
    if isinstance(p, (core.Float, core.Int)):
        is_int = isinstance(p, core.Int)
        step = getattr(p, "step", None)
        if step is not None and not (is_int and step == 1):
            grid = p.values if p.is_discrete else None
            if grid is None or len(grid) > MAX_GRID:
                raise SpaceError(f"parameter {p.name!r}: a stepped range with more than "
                                 f"{MAX_GRID} values cannot be written to ConfigSpace")
            meta["archtune"] = {"type": "int" if is_int else "float", "low": p.low,
                                "high": p.high, "step": step, "log": bool(p.log)}
            return {"type": "ordinal", "name": p.name, "sequence": list(grid),
                    "default_value": p.default, "meta": meta}
        info = meta.pop("configspace", None)
        cast = int if is_int else float
        d: dict[str, Any] = {"name": p.name}
        if isinstance(info, Mapping) and str(info.get("type", "")).split("_")[0] in (
                "normal", "beta"):
            dist = str(info["type"]).split("_")[0]
            d["type"] = f"{dist}_{'int' if is_int else 'float'}"
            for key in (("mu", "sigma") if dist == "normal" else ("alpha", "beta")):
                d[key] = float(info[key])
        else:
            d["type"] = "uniform_int" if is_int else "uniform_float"
            if info is not None:
                meta["configspace"] = info
        d.update({"lower": cast(p.low), "upper": cast(p.high),
                  "default_value": cast(p.default), "log": bool(p.log),
                  "meta": meta or None})
        return d
    if isinstance(p, core.Categorical):
        return {"type": "categorical", "name": p.name, "choices": list(p.choices),
                "weights": list(p.weights) if p.weights is not None else None,
                "default_value": p.default, "meta": meta or None}
    if isinstance(p, core.Ordinal):
        return {"type": "ordinal", "name": p.name, "sequence": list(p.sequence),
                "default_value": p.default, "meta": meta or None}
    if isinstance(p, core.Constant):
        return {"type": "constant", "name": p.name, "value": p.value, "meta": meta or None}
    raise SpaceError(f"parameter {p.name!r}: type {type(p).__name__} cannot be written")


def condition_to_dict(c: Any, space: core.SearchSpace | None = None) -> dict:
    """One condition as a ConfigSpace dict. With ``space``, a ``NotEquals`` whose parent can be
    inactive is written as an ``IN`` over the parent's other values (an ``OR`` of ``LT`` and
    ``GT`` for a continuous parent): ConfigSpace 1.x treats ``NEQ`` on an inactive parent as
    satisfied when it samples and validates, archtune (and ConfigSpace's own default
    configuration) as false; the rewritten form is false on an inactive parent in both."""
    kind = type(c).__name__
    if kind in ("And", "Or"):
        return {"type": kind.upper(), "child": c.child,
                "conditions": [condition_to_dict(s, space) for s in sub_conditions(c)]}
    if kind == "In":
        return {"type": "IN", "child": c.child, "parent": c.parent, "values": list(c.values)}
    if kind == "NotEquals" and space is not None and space.parents_of(c.parent):
        return _not_equals_to_dict(c, space.params[c.parent])
    inv = {v: k for k, v in _COND_CLASSES.items()}
    if kind in inv:
        return {"type": inv[kind], "child": c.child, "parent": c.parent, "value": c.value}
    raise SpaceError(f"parameter {c.child!r}: condition type {kind} cannot be written")


def _not_equals_to_dict(c: Any, parent: core.Param) -> dict:
    base = {"child": c.child, "parent": c.parent}
    if parent.is_discrete and parent.cardinality <= MAX_GRID:
        others = [v for v in parent.values if not _same(v, c.value)]
        if others:
            return {"type": "IN", **base, "values": others}
        return {"type": "AND", "child": c.child, "conditions": [
            {"type": "EQ", **base, "value": c.value}, {"type": "NEQ", **base, "value": c.value}]}
    return {"type": "OR", "child": c.child, "conditions": [
        {"type": "LT", **base, "value": c.value}, {"type": "GT", **base, "value": c.value}]}


def _same(a: Any, b: Any) -> bool:
    return choice_key(a) == choice_key(b)


def forbidden_to_dict(f: Any) -> dict:
    kind = type(f).__name__
    if kind == "ForbiddenEquals":
        return {"type": "EQUALS", "name": f.name, "value": f.value}
    if kind == "ForbiddenIn":
        return {"type": "IN", "name": f.name, "values": list(f.values)}
    if kind == "ForbiddenAnd":
        return {"type": "AND", "clauses": [forbidden_to_dict(s) for s in sub_conditions(f)]}
    if kind == "ForbiddenRelation":
        if f.op == "!=":
            return {"type": "OR", "clauses": [
                {"type": "RELATION_LT", "left": f.left, "right": f.right},
                {"type": "RELATION_GT", "left": f.left, "right": f.right}]}
        inv = {v: k for k, v in _REL_TYPES.items()}
        return {"type": inv[f.op], "left": f.left, "right": f.right}
    fn = getattr(f, "fn", None)
    if kind == "ForbiddenPredicate" and isinstance(fn, ValueClause):
        inv = {v: k for k, v in _CLAUSE_TYPES.items()}
        return {"type": inv[fn.op], "name": fn.name, "value": fn.value}
    raise SpaceError(f"forbidden clause {f!r} ({kind}) cannot be written to ConfigSpace; "
                     "only EQUALS/IN/AND/RELATION clauses can")
