"""Compile a :class:`~spaces.core.SearchSpace` for a search library.

- :func:`spaces.compile.optuna.to_optuna`: a define-by-run function for Optuna (and Ray Tune's
  ``OptunaSearch``);
- :func:`spaces.compile.tune.to_tune`: a Ray Tune ``param_space``.

Neither Optuna nor Ray is imported until a compiled object is used.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

__all__ = ["to_optuna", "to_tune", "strip_inactive", "INACTIVE", "activity_fn"]


def to_optuna(space: Any) -> Callable:
    from spaces.compile.optuna import to_optuna as _to_optuna

    return _to_optuna(space)


def to_tune(space: Any, **kwargs: Any) -> dict:
    from spaces.compile.tune import to_tune as _to_tune

    return _to_tune(space, **kwargs)


def strip_inactive(config: Mapping[str, Any]) -> dict:
    from spaces.compile.tune import strip_inactive as _strip

    return _strip(config)


INACTIVE = "__archtune_inactive__"


def activity_fn(space: Any, name: str) -> Callable[[Mapping[str, Any]], bool] | None:
    """A fast ``config -> bool`` telling whether ``name`` is active, given its parents' values.

    ``config`` holds the values of the parameters that are active so far; a parent missing from
    it is inactive, so the child is inactive too (ConfigSpace semantics). ``None`` for an
    unconditional parameter. Ordinal parents compare by position, as in ``SearchSpace``.
    """
    conds = space.conditions_for(name)
    if not conds:
        return None
    parents = tuple(sorted(set().union(*(c.parents for c in conds))))
    fns = []
    for c in conds:
        compile_ = getattr(c, "_compile", None)
        fns.append(compile_(space.params) if compile_ is not None else c.evaluate)

    def active(config: Mapping[str, Any]) -> bool:
        for p in parents:
            if p not in config:
                return False
        try:
            return all(f(config) for f in fns)
        except (KeyError, TypeError, ValueError):
            return False

    return active
