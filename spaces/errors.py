"""The root of archtune's error family, and the search-space errors.

Every user-facing error derives from :class:`ArchtuneError`. The value-error subclasses also
derive from :class:`ValueError` so callers that catch ``ValueError`` keep working.
"""
from __future__ import annotations

from typing import Iterable


class ArchtuneError(Exception):
    """Base class of every user-facing archtune error."""


class SpaceError(ArchtuneError, ValueError):
    """An invalid search space, parameter, condition, forbidden clause or configuration.

    ``violations`` lists every rule that was broken (one string each); the message joins them.
    """

    def __init__(self, violations: str | Iterable[str], *, source: str | None = None):
        if isinstance(violations, str):
            violations = [violations]
        self.violations: list[str] = [str(v) for v in violations]
        self.source = source
        prefix = f"{source}: " if source else ""
        if len(self.violations) == 1:
            msg = prefix + self.violations[0]
        else:
            msg = prefix + f"{len(self.violations)} violations:\n" + "\n".join(
                f"  - {v}" for v in self.violations
            )
        super().__init__(msg)


class SpaceKeyError(SpaceError, KeyError):
    """A name that is not a parameter of a space, or not active in a configuration.

    Also a :class:`KeyError`, so ``except KeyError`` around a lookup keeps working.
    """

    __str__ = Exception.__str__


__all__ = ["ArchtuneError", "SpaceError", "SpaceKeyError"]
