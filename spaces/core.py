"""Compatibility facade: re-exports the search-space API from the modules that now hold it.

``spaces.core`` used to hold everything; it was split into

- :mod:`spaces.params` -- parameter types (:class:`Param`, :class:`Categorical`, :class:`Ordinal`,
  :class:`Int`, :class:`Float`, :class:`Constant`) and the shared value helpers,
- :mod:`spaces.conditions` -- :class:`Condition`, :class:`Equals`, :class:`NotEquals`,
  :class:`In`, :class:`GreaterThan`, :class:`LessThan`, :class:`And`, :class:`Or`,
- :mod:`spaces.forbidden` -- :class:`Forbidden`, :class:`ForbiddenEquals`, :class:`ForbiddenIn`,
  :class:`ForbiddenAnd`, :class:`ForbiddenRelation`, :class:`ForbiddenPredicate`,
- :mod:`spaces.space` -- :class:`SearchSpace` (sampling, validation, encoding, serialisation),
- :mod:`spaces.counting` -- exact ``size`` / ``iter_configs``,
- :mod:`spaces.variation` -- ``mutate`` / ``neighbours`` / ``crossover``.

Every name importable from ``spaces.core`` before the split still is (the same objects), so
``from spaces.core import SearchSpace`` and ``core.Categorical`` keep working. New code may import
from here or from the modules above.

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

# Names the single-file core.py had at module level through its own imports; kept importable.
import bisect  # noqa: F401
import hashlib  # noqa: F401
import json  # noqa: F401
import math  # noqa: F401
import numbers  # noqa: F401
import operator  # noqa: F401
from dataclasses import dataclass, field  # noqa: F401
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence  # noqa: F401

import numpy as np  # noqa: F401

from spaces.conditions import And, Condition, Equals, GreaterThan, In, LessThan, NotEquals, Or
from spaces.errors import SpaceError  # noqa: F401
from spaces.forbidden import (
    Forbidden, ForbiddenAnd, ForbiddenEquals, ForbiddenIn, ForbiddenPredicate, ForbiddenRelation,
)
from spaces.params import Categorical, Constant, Float, Int, Ordinal, Param
from spaces.space import SearchSpace

# Private helpers, for code that imported them from here (spaces.tree imports _py).
from spaces.conditions import _COND_TYPES, _Conj, _mk, _Simple  # noqa: F401
from spaces.counting import _Counter  # noqa: F401
from spaces.forbidden import _REL_OPS, _check_values  # noqa: F401
from spaces.params import _INACTIVE, _PARAM_TYPES, _ChoiceMixin, _check_name  # noqa: F401
from spaces.params import _hashable_tuple, _is_int, _is_real, _key, _py, _rng  # noqa: F401
from spaces.space import _MAX_TRIES, _close_names, _domain, _jsonable  # noqa: F401

__all__ = [
    "Param", "Categorical", "Ordinal", "Int", "Float", "Constant",
    "Condition", "Equals", "NotEquals", "In", "GreaterThan", "LessThan", "And", "Or",
    "Forbidden", "ForbiddenEquals", "ForbiddenIn", "ForbiddenAnd", "ForbiddenRelation",
    "ForbiddenPredicate", "SearchSpace",
]
