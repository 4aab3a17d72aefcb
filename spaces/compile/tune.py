"""Compile a SearchSpace to a Ray Tune ``param_space``.

``to_tune(space)`` returns a flat dict ``name -> domain``:

- unconditional parameters get Tune's native domains, with archtune's inclusive bounds
  translated: ``Int(lo, hi)`` -> ``tune.randint(lo, hi + 1)`` (Tune's upper bound is
  exclusive), ``Int(log=True)`` -> ``tune.lograndint(lo, hi + 1)``, ``Int(step=q)`` ->
  ``tune.qrandint(lo, hi, q)`` (inclusive; only when ``lo`` is a multiple of ``q``, since Tune
  quantises to multiples of ``q``; otherwise ``tune.choice`` of the grid), ``Float`` ->
  ``tune.uniform`` / ``tune.loguniform`` / ``tune.quniform`` (same rule for the grid),
  ``Categorical`` / ``Ordinal`` -> ``tune.choice`` (a weighted categorical -> ``sample_from``),
  ``Constant`` -> the value itself;
- conditional parameters get ``tune.sample_from``: the function reads its parents from the
  partially resolved config (``spec.config``; Tune resolves them first and retries while a
  parent is unresolved) and returns a value when its conditions hold, else the sentinel
  :data:`INACTIVE`; :func:`strip_inactive` removes those (and the helper key below);
- forbidden clauses: Tune cannot reject a sampled config, so ``to_tune`` resamples instead.
  The parameters named by forbidden clauses and all their ancestors (the set is closed under
  "parent of") are drawn together by ONE ``sample_from`` under the key :data:`JOINT_KEY`, which
  draws a valid configuration of the space (redrawing forbidden combinations); each of those
  parameters is then a ``sample_from`` picking its value from it. Every other parameter keeps
  its native domain. A space without forbidden clauses has no joint key.

Every config resolved from the param space, after :func:`strip_inactive`, validates against
``space``. ``sample_from`` functions draw from NumPy's global random state (as Tune's own
``sample_from`` examples do), so ``np.random.seed`` makes them reproducible.

Example::

    from ray import tune
    param_space = to_tune(space)
    def trainable(config):
        config = strip_inactive(config)
        ...
    tune.Tuner(trainable, param_space=param_space).fit()
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from spaces import core

__all__ = ["to_tune", "strip_inactive", "INACTIVE", "JOINT_KEY", "sample_configs",
           "native_domain"]

#: The value a conditional parameter resolves to when it is inactive (removed by
#: :func:`strip_inactive`).
INACTIVE = "__archtune_inactive__"
JOINT_KEY = "__archtune_joint__"
MAX_CHOICE = 100_000  # largest grid given to tune.choice when tune.q* cannot express it


def _rng() -> np.random.Generator:
    return np.random.default_rng(np.random.randint(0, 2**31 - 1))


def _config_of(spec: Any) -> Any:
    """Tune passes the (guarded) spec ``{"config": {...}}``; accept a bare config too."""
    try:
        return spec.config
    except AttributeError:
        return spec


def _read(cfg: Any, name: str) -> Any:
    # attribute access goes through Tune's _UnresolvedAccessGuard, which raises
    # RecursiveDependencyError while ``name`` is unresolved so Tune retries later
    try:
        return getattr(cfg, name)
    except AttributeError:
        return cfg[name]


class _Draw:
    """Draw one value of a parameter (weighted categoricals, odd grids)."""

    def __init__(self, param: core.Param):
        self.param = param

    def __call__(self, spec: Any = None) -> Any:
        return self.param.sample(_rng())

    def __repr__(self) -> str:
        return f"draw({self.param.name})"


class _Conditional:
    """Value of a conditional parameter, or INACTIVE when its conditions do not hold.

    Parents resolved to INACTIVE are left out of the values the activity test sees, so a
    simple condition on them is false while another disjunct of an OR may still hold.
    """

    def __init__(self, space: core.SearchSpace, name: str):
        self.name = name
        self.param = space.params[name]
        self.parents = space.parents_of(name)
        self.active = space.activity_fn(name)

    def __call__(self, spec: Any) -> Any:
        cfg = _config_of(spec)
        values = {}
        for p in self.parents:
            v = _read(cfg, p)
            if not (isinstance(v, str) and v == INACTIVE):
                values[p] = v
        if not self.active(values):
            return INACTIVE
        return self.param.sample(_rng())

    def __repr__(self) -> str:
        return f"conditional({self.name} | {', '.join(self.parents)})"


class _Joint:
    """Draw the forbidden-involved parameters (and their ancestors) together, validly."""

    def __init__(self, space: core.SearchSpace, names: tuple[str, ...]):
        self.space = space
        self.names = names

    def __call__(self, spec: Any = None) -> dict:
        cfg = self.space.sample(_rng())
        return {n: cfg[n] for n in self.names if n in cfg}

    def __repr__(self) -> str:
        return f"joint({', '.join(self.names)})"


class _Pick:
    """One parameter's value from the joint draw (INACTIVE when absent)."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, spec: Any) -> Any:
        joint = _read(_config_of(spec), JOINT_KEY)
        return joint[self.name] if self.name in joint else INACTIVE

    def __repr__(self) -> str:
        return f"pick({self.name})"


def _ancestor_closure(space: core.SearchSpace, names: set[str]) -> set[str]:
    out, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        out.add(n)
        for c in space.conditions_for(n):
            todo.extend(c.parents)
    return out


def _on_grid(low: float, q: float) -> bool:
    k = low / q
    return math.isclose(k, round(k), rel_tol=0, abs_tol=1e-9)


def native_domain(p: core.Param) -> Any:
    """Tune's native domain for an unconditional parameter (inclusive bounds translated)."""
    from ray import tune

    if isinstance(p, core.Constant):
        return p.value
    if isinstance(p, core.Categorical):
        if p.weights is not None and len(set(p.weights)) > 1:
            return tune.sample_from(_Draw(p))
        return tune.choice(list(p.choices))
    if isinstance(p, core.Ordinal):
        return tune.choice(list(p.sequence))
    if isinstance(p, core.Int):
        if p.low == p.high:
            return p.low
        if p.log:
            return tune.lograndint(p.low, p.high + 1)
        if p.step == 1:
            return tune.randint(p.low, p.high + 1)
        if p.low % p.step == 0:
            return tune.qrandint(p.low, p.high, p.step)
        return _grid(p)
    if isinstance(p, core.Float):
        if p.low == p.high:
            return p.low
        if p.step is None:
            return tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
        if _on_grid(p.low, p.step) and _on_grid(p.high, p.step):
            return tune.quniform(p.low, p.high, p.step)
        return _grid(p)
    raise TypeError(f"parameter {p.name!r}: type {type(p).__name__} cannot be compiled to Tune")


def _grid(p: core.Param) -> Any:
    from ray import tune

    if p.cardinality <= MAX_CHOICE:
        return tune.choice(list(p.values))
    return tune.sample_from(_Draw(p))


def to_tune(space: core.SearchSpace) -> dict:
    """A Ray Tune ``param_space`` for ``space`` (see the module docstring)."""
    from ray import tune

    if not isinstance(space, core.SearchSpace):
        raise TypeError(f"to_tune needs a SearchSpace, got {type(space).__name__}")
    forbidden_names: set[str] = set()
    for f in space.forbiddens:
        forbidden_names.update(f.names)
    joint = _ancestor_closure(space, forbidden_names) if forbidden_names else set()
    out: dict[str, Any] = {}
    if joint:
        out[JOINT_KEY] = tune.sample_from(
            _Joint(space, tuple(n for n in space.names if n in joint)))
    for name in space.names:
        if name in joint:
            out[name] = tune.sample_from(_Pick(name))
        elif space.conditions_for(name):
            out[name] = tune.sample_from(_Conditional(space, name))
        else:
            out[name] = native_domain(space.params[name])
    return out


def strip_inactive(config: Mapping[str, Any]) -> dict:
    """Drop parameters resolved to :data:`INACTIVE` and archtune's helper keys."""
    return {
        k: v for k, v in config.items()
        if not (isinstance(v, str) and v == INACTIVE) and not str(k).startswith("__archtune_")
    }


def sample_configs(param_space: Mapping[str, Any], n: int = 1,
                   seed: int | None = None) -> list[dict]:
    """Resolve ``param_space`` ``n`` times with Tune's variant generator (no Ray cluster) and
    return the stripped configs. Seeds NumPy's global state when ``seed`` is given."""
    from ray.tune.search.variant_generator import generate_variants

    if seed is not None:
        np.random.seed(seed)
    out = []
    for _ in range(n):
        for _, spec in generate_variants({"config": dict(param_space)}):
            out.append(strip_inactive(spec["config"]))
    return out

