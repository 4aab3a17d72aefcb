"""The search-space API in one import: the parameter types, conditions, forbidden clauses and
:class:`SearchSpace`, re-exported from the modules that hold them:

- :mod:`spaces.params` -- parameter types (:class:`Param`, :class:`Categorical`, :class:`Ordinal`,
  :class:`Int`, :class:`Float`, :class:`Constant`),
- :mod:`spaces.conditions` -- :class:`Condition`, :class:`Equals`, :class:`NotEquals`,
  :class:`In`, :class:`GreaterThan`, :class:`LessThan`, :class:`And`, :class:`Or`,
- :mod:`spaces.forbidden` -- :class:`Forbidden`, :class:`ForbiddenEquals`, :class:`ForbiddenIn`,
  :class:`ForbiddenAnd`, :class:`ForbiddenRelation`, :class:`ForbiddenPredicate`,
- :mod:`spaces.graph` -- :class:`~spaces.graph.SpaceGraph`: the checked condition graph,
  activity, defaults, canonical forms and config ids,
- :mod:`spaces.space` -- :class:`SearchSpace` (validation, encoding, serialisation),
- :mod:`spaces.sampling` -- single and vectorised batch sampling,
- :mod:`spaces.counting` -- exact ``size`` / ``iter_configs``,
- :mod:`spaces.variation` -- ``mutate`` / ``neighbours`` / ``crossover``,
- :mod:`spaces.values` -- value helpers shared by these modules.

``from spaces.core import SearchSpace`` and ``core.Categorical`` name the same objects as the
modules above.

A worked example stands in :mod:`spaces.space`.
"""
from __future__ import annotations

from spaces.conditions import And, Condition, Equals, GreaterThan, In, LessThan, NotEquals, Or
from spaces.forbidden import (
    Forbidden, ForbiddenAnd, ForbiddenEquals, ForbiddenIn, ForbiddenPredicate, ForbiddenRelation,
)
from spaces.params import Categorical, Constant, Float, Int, Ordinal, Param
from spaces.space import SearchSpace

__all__ = [
    "Param", "Categorical", "Ordinal", "Int", "Float", "Constant",
    "Condition", "Equals", "NotEquals", "In", "GreaterThan", "LessThan", "And", "Or",
    "Forbidden", "ForbiddenEquals", "ForbiddenIn", "ForbiddenAnd", "ForbiddenRelation",
    "ForbiddenPredicate", "SearchSpace",
]
