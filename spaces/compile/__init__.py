"""Compile a :class:`~spaces.space.SearchSpace` for a search library.

- :func:`spaces.compile.optuna.to_optuna`: a define-by-run function for Optuna (and Ray Tune's
  ``OptunaSearch``);
- :func:`spaces.compile.tune.to_tune`: a Ray Tune ``param_space``.

Neither Optuna nor Ray is imported until a compiled object is used. Both compilers decide
activity with :meth:`~spaces.graph.SpaceGraph.activity_fn` (ConfigSpace semantics, ORs
included), so Optuna and Tune see exactly the space's active parameters.
"""
from __future__ import annotations

from spaces.compile.optuna import to_optuna
from spaces.compile.tune import INACTIVE, strip_inactive, to_tune

__all__ = ["to_optuna", "to_tune", "strip_inactive", "INACTIVE"]
