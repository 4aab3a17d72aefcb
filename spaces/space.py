"""The :class:`SearchSpace`: parameters + conditions + forbidden clauses, validated once at
construction, with sampling (single and vectorised batch), validation, size, variation
operators, encoding, derived spaces and (de)serialisation.

The checked structure, activity, canonical forms and config ids come from
:class:`~spaces.graph.SpaceGraph`; sampling lives in :mod:`spaces.sampling`, exact counting
(``size`` / ``iter_configs``) in :mod:`spaces.counting` and the variation operators
(``mutate`` / ``neighbours`` / ``crossover``) in :mod:`spaces.variation`; the methods here
delegate to them. Pure Python + numpy.

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

import math
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from spaces import counting, sampling, variation
from spaces.conditions import Condition
from spaces.errors import SpaceError
from spaces.forbidden import Forbidden
from spaces.graph import SpaceGraph, close_names, domain_text, fast_contains
from spaces.params import Categorical, Constant, Ordinal, Param
from spaces.values import as_rng, is_int

__all__ = ["SearchSpace"]


class SearchSpace(SpaceGraph):
    """A set of parameters with conditions and forbidden clauses.

    Built once and validated at construction (SpaceError names every broken rule). ``names`` is the
    sorted topological order used for sampling: parents always come before their children.
    """

    def __init__(self, params: Iterable[Param] | Mapping[str, Param],
                 conditions: Iterable[Condition] = (), forbiddens: Iterable[Forbidden] = (),
                 name: str = ""):
        super().__init__(params, conditions, forbiddens, name=name)
        self._checks = [(n, active, fast_contains(p)) for n, p, active in self.steps]
        self._batch = sampling.BatchSampler(self)

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

    # ---- sampling ----------------------------------------------------------------------------
    def sample(self, rng: np.random.Generator | int | None = None, n: int | None = None):
        """One config (``n`` None) or a list of ``n`` configs, all valid.

        Parameters are drawn in ``names`` order; forbidden combinations are redrawn (SpaceError
        after too many tries).
        """
        rng = as_rng(rng)
        if n is None:
            return sampling.sample_one(self, rng)
        if not is_int(n) or n < 0:
            raise SpaceError(f"sample: n must be a non-negative integer, got {n!r}")
        return sampling.sample_batch(self, self._batch, rng, int(n))

    # ---- validation --------------------------------------------------------------------------
    def _fast_valid(self, config: Mapping) -> bool:
        count = 0
        for n, active, contains in self._checks:
            if active is not None and not active(config):
                if n in config:
                    return False
                continue
            if n not in config or not contains(config[n]):
                return False
            count += 1
        if count != len(config):
            return False
        return not self.is_forbidden(config)

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
                close = close_names(k, self.params)
                out.append(f"unknown parameter {k!r}" + (f" (did you mean {close}?)" if close else ""))
        act: dict = {}
        for n, p, active in self.steps:
            try:
                on = active is None or bool(active(act))
            except (KeyError, TypeError, ValueError):
                on = False
            if not on:
                if n in config:
                    conds = " and ".join(str(c) for c in self._conds[n])
                    out.append(f"inactive parameter {n!r} is present (active only when {conds})")
                continue
            if n not in config:
                out.append(f"active parameter {n!r} is missing")
                continue
            v = config[n]
            if not p.contains(v):
                out.append(f"value {v!r} of parameter {n!r} is outside its domain {domain_text(p)}")
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
            raise SpaceError(v, source=self._source())

    def is_valid(self, config: Any) -> bool:
        """True iff ``config`` is a valid configuration (no exception for bad input)."""
        if not isinstance(config, Mapping):
            return False
        try:
            return self._fast_valid(config)
        except Exception:  # noqa: BLE001
            return not self.violations(config)

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

    # ---- variation operators -------------------------------------------------------------------
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
    def _encoded(self) -> Iterator[tuple[str, Param]]:
        """``(name, param)`` of every encoded parameter (all but constants), in order."""
        return ((n, self.params[n]) for n in self.names if not isinstance(self.params[n], Constant))

    @property
    def encoding_names(self) -> list[str]:
        names: list[str] = []
        for n, p in self._encoded():
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
        for n, p in self._encoded():
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
                errs.append(f"cannot fix {k!r} to {v!r}: outside its domain {domain_text(self.params[k])}")
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


