"""archtune search spaces: parameters, conditions, forbidden clauses, architecture trees.

Pure Python + numpy; importing this package never imports torch or ray.
"""
from spaces.errors import ArchtuneError, SpaceError
from spaces.core import (
    And, Categorical, Condition, Constant, Equals, Float, Forbidden, ForbiddenAnd,
    ForbiddenEquals, ForbiddenIn, ForbiddenPredicate, ForbiddenRelation, GreaterThan, In, Int,
    LessThan, NotEquals, Or, Ordinal, Param, SearchSpace,
)
from spaces.tree import ArchConfig, ArchConfigList, ArchTree, Choice, Repeat, choice, repeat
from spaces.describe import describe_space

__all__ = [
    "ArchtuneError", "SpaceError",
    "Param", "Categorical", "Ordinal", "Int", "Float", "Constant",
    "Condition", "Equals", "NotEquals", "In", "GreaterThan", "LessThan", "And", "Or",
    "Forbidden", "ForbiddenEquals", "ForbiddenIn", "ForbiddenAnd", "ForbiddenRelation",
    "ForbiddenPredicate", "SearchSpace",
    "ArchTree", "ArchConfig", "ArchConfigList", "Choice", "Repeat", "choice", "repeat",
    "describe_space",
]
