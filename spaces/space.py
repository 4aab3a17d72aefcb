"""The :class:`SearchSpace`: parameters + conditions + forbidden clauses, validated once at
construction, with sampling (single and vectorised batch), validation, canonical forms and config
ids, activity queries, size, encoding, derived spaces and (de)serialisation.

A :class:`SearchSpace` checks its conditions (parents exist, no cycles, legal values) once, then
precomputes a sampling plan in sorted topological order so sampling is a tight loop. Exact
counting (``size`` / ``iter_configs``) lives in :mod:`spaces.counting` and the variation operators
(``mutate`` / ``neighbours`` / ``crossover``) in :mod:`spaces.variation`; the methods here delegate
to them. Top of the layering ``params <- conditions / forbidden <- space``. Pure Python + numpy.

A configuration is a flat ``dict[str, value]``; inactive parameters are absent, never ``None``.

Example::

    space = SearchSpace(
        [Categorical("opt", ("sgd", "adam")), Float("lr", 1e-5, 1e-1, log=True),
         Ordinal("beta", (0.9, 0.99))],
        conditions=[Equals("beta", "opt", "adam")],
    )
    cfg = space.sample(0)
    space.validate(cfg)
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from spaces import counting, variation
from spaces.conditions import Condition
from spaces.errors import SpaceError
from spaces.forbidden import Forbidden
from spaces.params import (
    _INACTIVE, Categorical, Constant, Ordinal, Param, _ChoiceMixin, _is_int, _py, _rng,
)

_MAX_TRIES = 1000


class SearchSpace:
    """A set of parameters with conditions and forbidden clauses.

    Built once and validated at construction (SpaceError names every broken rule). ``names`` is the
    sorted topological order used for sampling: parents always come before their children.
    """

    def __init__(self, params: Iterable[Param] | Mapping[str, Param],
                 conditions: Iterable[Condition] = (), forbiddens: Iterable[Forbidden] = (),
                 name: str = ""):
        if isinstance(params, Mapping):
            params = list(params.values())
        self.name = name
        errs: list[str] = []
        self.params: dict[str, Param] = {}
        for p in params:
            if not isinstance(p, Param):
                raise SpaceError(f"space {name!r}: {p!r} is not a parameter")
            if p.name in self.params:
                errs.append(f"parameter {p.name!r} is defined twice")
            self.params[p.name] = p
        self.conditions: tuple[Condition, ...] = tuple(conditions)
        self.forbiddens: tuple[Forbidden, ...] = tuple(forbiddens)
        for c in self.conditions:
            if not isinstance(c, Condition):
                errs.append(f"{c!r} is not a condition")
                continue
            errs.extend(c._check(self.params))
        for f in self.forbiddens:
            if not isinstance(f, Forbidden):
                errs.append(f"{f!r} is not a forbidden clause")
                continue
            errs.extend(f._check(self.params))
        if errs:
            raise SpaceError(errs, source=f"space {name!r}" if name else None)
        self._conds: dict[str, list[Condition]] = {}
        for c in self.conditions:
            self._conds.setdefault(c.child, []).append(c)
        self._parents: dict[str, tuple[str, ...]] = {
            n: tuple(sorted(set().union(*(c.parents for c in cs)))) for n, cs in self._conds.items()
        }
        self.names: list[str] = self._toposort()
        self._build_plan()
        self._default = self._make_default()
        bad = [f for f in self.forbiddens if f.is_forbidden(self._default)]
        if bad:
            raise SpaceError(
                [f"default configuration violates forbidden clause '{f}' "
                 f"(values: {', '.join(f'{n}={self._default[n]!r}' for n in f.names)})" for f in bad],
                source=f"space {name!r}" if name else None,
            )

    # ---- construction helpers -------------------------------------------------------------
    def _toposort(self) -> list[str]:
        import heapq

        children: dict[str, list[str]] = {n: [] for n in self.params}
        indeg = {n: 0 for n in self.params}
        for child, parents in self._parents.items():
            for p in parents:
                children[p].append(child)
                indeg[child] += 1
        heap = [n for n, d in indeg.items() if d == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            n = heapq.heappop(heap)
            order.append(n)
            for c in children[n]:
                indeg[c] -= 1
                if indeg[c] == 0:
                    heapq.heappush(heap, c)
        if len(order) != len(self.params):
            cyc = sorted(n for n in self.params if indeg[n] > 0)
            raise SpaceError(
                f"cyclic conditions between parameters {cyc}: a parameter cannot (indirectly) "
                "condition itself", source=f"space {self.name!r}" if self.name else None)
        self._children = children
        return order

    def _build_plan(self) -> None:
        plan = []
        for n in self.names:
            p = self.params[n]
            conds = self._conds.get(n)
            fn = None
            if conds:
                fs = [c._compile(self.params) for c in conds]
                fn = fs[0] if len(fs) == 1 else (lambda c, fs=fs: all(f(c) for f in fs))
            plan.append((n, p._draw, fn, self._parents.get(n, ()), p))
        self._plan = plan
        self._n = len(plan)
        # fast membership per param for validation
        checks = []
        for n, _, fn, parents, p in plan:
            if isinstance(p, _ChoiceMixin):
                lk = p._lookup
                def contains(v, lk=lk):
                    try:
                        return (("__bool__", v) if v.__class__ is bool else v) in lk
                    except TypeError:
                        return False
            else:
                contains = p.contains
            checks.append((n, fn, parents, contains))
        self._checks = checks
        self._vconds = {n: [c._vcompile(self.params) for c in cs] for n, cs in self._conds.items()}

    def _make_default(self) -> dict:
        cfg: dict = {}
        for n, _, fn, parents, p in self._plan:
            if fn is not None and (any(q not in cfg for q in parents) or not fn(cfg)):
                continue
            cfg[n] = p.default
        return cfg

    # ---- mapping-like ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.params)

    def __getitem__(self, name: str) -> Param:
        try:
            return self.params[name]
        except KeyError:
            raise KeyError(f"{name!r} is not a parameter of space {self.name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.params

    def __iter__(self) -> Iterator[str]:
        return iter(self.params)

    def __repr__(self) -> str:
        return (f"SearchSpace(name={self.name!r}, params={len(self.params)}, "
                f"conditions={len(self.conditions)}, forbiddens={len(self.forbiddens)})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SearchSpace):
            return NotImplemented
        return (self.params == other.params and set(map(str, self.conditions)) ==
                set(map(str, other.conditions)) and set(map(str, self.forbiddens)) ==
                set(map(str, other.forbiddens)))

    __hash__ = None  # type: ignore[assignment]

    # ---- activity ----------------------------------------------------------------------------
    def conditions_for(self, name: str) -> list[Condition]:
        self[name]
        return list(self._conds.get(name, ()))

    def children_of(self, name: str) -> list[str]:
        return sorted(self._children.get(name, ()))

    def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
        """True iff every ancestor is active in ``config`` and every condition holds."""
        self[name]
        return name in self.active_names(config)

    def active_names(self, config: Mapping[str, Any]) -> list[str]:
        """Names (in topological order) active under ``config``'s values for their parents."""
        out: list[str] = []
        act: dict = {}
        for n, _, fn, parents, _p in self._plan:
            if fn is not None:
                if any(q not in act for q in parents):
                    continue
                try:
                    if not fn(act):
                        continue
                except (KeyError, TypeError, ValueError):
                    continue
            out.append(n)
            act[n] = config.get(n, self.params[n].default) if isinstance(config, Mapping) else None
        return out

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None):
        """One config (``n`` None) or a list of ``n`` configs, all valid.

        Parameters are drawn in ``names`` order; forbidden combinations are redrawn (SpaceError
        after too many tries).
        """
        rng = _rng(rng)
        if n is None:
            return self._sample_one(rng)
        if not _is_int(n) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        return self._sample_batch(rng, int(n))

    def _sample_one(self, rng: np.random.Generator) -> dict:
        plan = self._plan
        forb = self.forbiddens
        for _ in range(_MAX_TRIES):
            us = rng.random(self._n).tolist()
            cfg: dict = {}
            i = 0
            for n, draw, fn, parents, _p in plan:
                if fn is not None:
                    ok = True
                    for q in parents:
                        if q not in cfg:
                            ok = False
                            break
                    if not ok or not fn(cfg):
                        i += 1
                        continue
                cfg[n] = draw(us[i])
                i += 1
            if not forb or not any(f.is_forbidden(cfg) for f in forb):
                return cfg
        raise self._too_many()

    def _too_many(self) -> SpaceError:
        return SpaceError(
            f"space {self.name!r}: no valid configuration found in {_MAX_TRIES} tries; the forbidden "
            f"clauses {[str(f) for f in self.forbiddens]} exclude (almost) everything")

    def _sample_batch(self, rng: np.random.Generator, n: int) -> list[dict]:
        if n == 0:
            return []
        out: list[dict] = []
        need = n
        for _ in range(_MAX_TRIES):
            rows = self._batch_rows(rng, need)
            if self.forbiddens:
                rows = [r for r in rows if not any(f.is_forbidden(r) for f in self.forbiddens)]
            out.extend(rows)
            need = n - len(out)
            if need <= 0:
                return out[:n]
        raise self._too_many()

    def _batch_rows(self, rng: np.random.Generator, n: int) -> list[dict]:
        u = rng.random((self._n, n))
        cols: dict[str, np.ndarray] = {}
        masks: dict[str, np.ndarray | None] = {}
        objs = []
        for i, (name, _, fn, parents, p) in enumerate(self._plan):
            col = p._draw_column(u[i])
            cols[name] = col
            mask = None
            if fn is not None:
                mask = np.ones(n, dtype=bool)
                for q in parents:
                    if masks[q] is not None:
                        mask &= masks[q]
                for vf in self._vconds[name]:
                    mask &= vf(cols)
            masks[name] = mask
            vals = p._column_values(col)
            if mask is not None:
                vals[~mask] = _INACTIVE
            objs.append(vals.tolist())
        names = self.names
        if not self._conds:
            return [dict(zip(names, row)) for row in zip(*objs)]
        inactive = _INACTIVE
        return [{k: v for k, v in zip(names, row) if v is not inactive} for row in zip(*objs)]

    # ---- validation --------------------------------------------------------------------------
    def _fast_valid(self, config: Mapping) -> bool:
        count = 0
        for n, fn, parents, contains in self._checks:
            if fn is not None:
                ok = True
                for q in parents:
                    if q not in config:
                        ok = False
                        break
                if not ok or not fn(config):
                    if n in config:
                        return False
                    continue
            if n not in config:
                return False
            if not contains(config[n]):
                return False
            count += 1
        if count != len(config):
            return False
        for f in self.forbiddens:
            if f.is_forbidden(config):
                return False
        return True

    def violations(self, config: Any) -> list[str]:
        """Every broken rule of ``config`` (empty list when valid)."""
        if not isinstance(config, Mapping):
            return [f"configuration must be a mapping, got {type(config).__name__}"]
        try:
            if self._fast_valid(config):
                return []
        except Exception:  # noqa: BLE001 - fall through to the detailed pass
            pass
        out: list[str] = []
        for k in config:
            if k not in self.params:
                close = _close_names(k, self.params)
                out.append(f"unknown parameter {k!r}" + (f" (did you mean {close}?)" if close else ""))
        act: dict = {}
        for n, _, fn, parents, p in self._plan:
            active = True
            if fn is not None:
                if any(q not in act for q in parents):
                    active = False
                else:
                    try:
                        active = bool(fn(act))
                    except (KeyError, TypeError, ValueError):
                        active = False
            if not active:
                if n in config:
                    conds = " and ".join(str(c) for c in self._conds[n])
                    out.append(f"inactive parameter {n!r} is present (active only when {conds})")
                continue
            if n not in config:
                out.append(f"active parameter {n!r} is missing")
                continue
            v = config[n]
            if not p.contains(v):
                out.append(f"value {v!r} of parameter {n!r} is outside its domain {_domain(p)}")
                continue
            act[n] = p.normalize(v)
        # ``act`` holds only valid active values, so clauses are safe to evaluate on it
        for f in self.forbiddens:
            try:
                if f.is_forbidden(act):
                    out.append(
                        f"forbidden combination '{f}' ("
                        + ", ".join(f"{k}={act[k]!r}" for k in f.names) + ")")
            except Exception as e:  # noqa: BLE001
                out.append(f"forbidden clause '{f}' could not be evaluated: {e}")
        return out

    def validate(self, config: Any) -> None:
        """Raise one SpaceError listing every violation (unknown/inactive/missing keys, values
        outside domains, forbidden combinations)."""
        v = self.violations(config)
        if v:
            raise SpaceError(v, source=f"space {self.name!r}" if self.name else None)

    def is_valid(self, config: Any) -> bool:
        if not isinstance(config, Mapping):
            return False
        try:
            return self._fast_valid(config)
        except Exception:  # noqa: BLE001
            return not self.violations(config)

    # ---- canonical forms ---------------------------------------------------------------------
    def default(self) -> dict:
        return dict(self._default)

    def canonical(self, config: Mapping[str, Any]) -> dict:
        """Active parameters only, in ``names`` order, python types (ints for Int params, the
        stored choice object for choice params). Unknown keys are dropped."""
        out: dict = {}
        for n, _, fn, parents, p in self._plan:
            if fn is not None:
                if any(q not in out for q in parents):
                    continue
                try:
                    if not fn(out):
                        continue
                except (KeyError, TypeError, ValueError):
                    continue
            if n not in config:
                continue
            v = config[n]
            try:
                out[n] = p.normalize(v)
            except (ValueError, TypeError):
                out[n] = _py(v)
        return out

    def config_id(self, config: Mapping[str, Any], used: Iterable[str] | None = None) -> str:
        """sha1 of the canonical JSON of the active values (only ``used`` keys when given).

        Stable across processes and Python versions; ignores inactive values.
        """
        c = self.canonical(config)
        if used is not None:
            used = set(used)
            c = {k: v for k, v in c.items() if k in used}
        blob = json.dumps(_jsonable(c), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha1(blob.encode("utf-8")).hexdigest()

    # ---- size ----------------------------------------------------------------------------------
    def size_upper_bound(self) -> int | float:
        """Product of every domain size (ignores conditions and forbiddens)."""
        total: int | float = 1
        for p in self.params.values():
            c = p.cardinality
            if c == math.inf:
                return math.inf
            total *= c
        return total

    def size(self) -> int | float:
        """Exact number of distinct valid configurations (``math.inf`` if any parameter is
        continuous). Counts recursively: independent components multiply, only parameters that
        gate conditions or appear in forbidden clauses are enumerated."""
        return counting.size(self)

    def iter_configs(self) -> Iterator[dict]:
        """Every distinct valid configuration of a discrete space (depth-first, ``names`` order)."""
        yield from counting.iter_configs(self)

    # ---- variation operators (implemented in spaces.variation) ---------------------------------
    def _repair(self, cfg: Mapping[str, Any], rng: np.random.Generator | None) -> dict:
        """Drop inactive keys, fill newly active ones (sampled, or default when rng is None)."""
        return variation.repair(self, cfg, rng)

    def _forbidden(self, cfg: Mapping) -> bool:
        return variation.is_forbidden(self, cfg)

    def _mutate_value(self, p: Param, v: Any, rng: np.random.Generator) -> Any:
        return variation.mutate_value(p, v, rng)

    def mutate(self, config: Mapping[str, Any], prob: float = 0.2,
               rng: np.random.Generator | int | None = None) -> dict:
        """Change each active parameter with probability ``prob``; the result is valid."""
        return variation.mutate(self, config, prob, rng)

    def neighbours(self, config: Mapping[str, Any],
                   rng: np.random.Generator | int | None = None) -> list[dict]:
        """Configs differing in one active parameter (adjacent values for ordered params, every
        other value for categoricals); newly active params get defaults (or samples with rng)."""
        return variation.neighbours(self, config, rng)

    def crossover(self, a: Mapping[str, Any], b: Mapping[str, Any],
                  rng: np.random.Generator | int | None = None) -> dict:
        """Uniform crossover: each active parameter comes from ``a`` or ``b`` (sampled if neither
        has it active); the result is valid."""
        return variation.crossover(self, a, b, rng)

    # ---- encoding ------------------------------------------------------------------------------
    @property
    def encoding_names(self) -> list[str]:
        names: list[str] = []
        for n in self.names:
            p = self.params[n]
            if isinstance(p, Constant):
                continue
            if isinstance(p, Categorical):
                names.extend(f"{n}={c}" for c in p.choices)
            else:
                names.append(n)
        return names

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """Fixed-length float vector: ordinals by index, categoricals one-hot, numbers as values,
        inactive parameters NaN (constants are omitted)."""
        c = self.canonical(config)
        out: list[float] = []
        for n in self.names:
            p = self.params[n]
            if isinstance(p, Constant):
                continue
            if isinstance(p, Categorical):
                if n in c:
                    i = p.index(c[n])
                    out.extend(1.0 if j == i else 0.0 for j in range(p.cardinality))
                else:
                    out.extend([math.nan] * p.cardinality)
            elif n not in c:
                out.append(math.nan)
            elif isinstance(p, Ordinal):
                out.append(float(p.index(c[n])))
            else:
                out.append(float(c[n]))
        return np.asarray(out, dtype=float)

    # ---- derived spaces and serialisation ------------------------------------------------------
    def discrete_values(self, name: str) -> tuple:
        p = self[name]
        if not p.is_discrete:
            raise SpaceError(f"parameter {name!r} is continuous; it has no discrete values")
        return p.values

    def with_fixed(self, values: Mapping[str, Any]) -> "SearchSpace":
        """A copy where each named parameter becomes a Constant with the given (valid) value."""
        errs = []
        for k, v in values.items():
            if k not in self.params:
                errs.append(f"cannot fix unknown parameter {k!r}")
            elif not self.params[k].contains(v):
                errs.append(f"cannot fix {k!r} to {v!r}: outside its domain {_domain(self.params[k])}")
        if errs:
            raise SpaceError(errs)
        params = [Constant(n, p.normalize(values[n]), meta=p.meta) if n in values else p
                  for n, p in self.params.items()]
        return SearchSpace(params, self.conditions, self.forbiddens, name=self.name)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "params": [p.to_dict() for p in self.params.values()],
            "conditions": [c.to_dict() for c in self.conditions],
            "forbiddens": [f.to_dict() for f in self.forbiddens],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> "SearchSpace":
        if not isinstance(d, Mapping) or "params" not in d:
            raise SpaceError(f"space spec must be a mapping with a 'params' list, got {d!r}"[:300])
        params = [Param.from_dict(p) for p in d["params"]]
        conds = [Condition.from_dict(c) for c in d.get("conditions", ()) or ()]
        forbs = [Forbidden.from_dict(f) for f in d.get("forbiddens", ()) or ()]
        return cls(params, conds, forbs, name=d.get("name", "") or "")


def _domain(p: Param) -> str:
    if isinstance(p, (Categorical, Ordinal)):
        return f"{list(p.values)!r}"
    if isinstance(p, Constant):
        return f"{{{p.value!r}}}"
    s = f"[{p.low}, {p.high}]"  # type: ignore[attr-defined]
    if getattr(p, "step", None) not in (None, 1):
        s += f" step {p.step}"  # type: ignore[attr-defined]
    return s


def _close_names(k: str, names: Iterable[str]) -> list[str]:
    import difflib

    return difflib.get_close_matches(str(k), list(names), n=3)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return repr(v)
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return repr(v)
