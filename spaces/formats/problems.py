"""Problem collection for the format readers, and one-shot construction of the space.

A reader records every problem it finds in a :class:`Problems` and raises them together; it
then builds the :class:`~spaces.space.SearchSpace` once with :func:`build_space`, so a bad file
never half-loads.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

from spaces.errors import SpaceError
from spaces.space import SearchSpace

__all__ = ["Problems", "build_space", "exc_text"]


# --------------------------------------------------------------------------------------------
# Error collection and one-shot construction
# --------------------------------------------------------------------------------------------
class Problems:
    """Collects problems while a reader converts a file; raise once at the end."""

    def __init__(self, source: str):
        self.source = source
        self.items: list[str] = []

    def add(self, where: str, problem: str) -> None:
        # core messages already start with "parameter 'x': ..."; do not say it twice
        if where and not problem.startswith(where):
            problem = f"{where}: {problem}"
        self.items.append(problem)

    def param(self, name: Any, problem: str) -> None:
        self.add(f"parameter {name!r}", problem)

    def guard(self, where: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; turn a ValueError/TypeError/KeyError into a recorded problem."""
        try:
            return fn()
        except SpaceError as exc:
            for v in exc.violations:
                self.add(where, v)
        except (ValueError, TypeError, KeyError, ArithmeticError) as exc:
            self.add(where, exc_text(exc))
        return None

    def raise_if_any(self) -> None:
        if self.items:
            raise SpaceError(self.items, source=self.source)


def exc_text(exc: BaseException) -> str:
    """A short message for an exception raised while converting a file."""
    if isinstance(exc, KeyError) and exc.args:
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def build_space(
    source: str,
    params: Iterable[Any],
    conditions: Iterable[Any] = (),
    forbiddens: Iterable[Any] = (),
    name: str = "",
) -> Any:
    """Construct the SearchSpace once; check that the default configuration is valid.

    Any error raised by the core constructors is re-raised as a SpaceError naming ``source``.
    """
    params, conditions, forbiddens = list(params), list(conditions), list(forbiddens)
    try:
        space = SearchSpace(params, conditions=conditions, forbiddens=forbiddens, name=name)
    except SpaceError as exc:
        raise SpaceError(exc.violations, source=source) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(exc_text(exc), source=source) from None
    try:
        default = space.default()
    except SpaceError as exc:
        raise SpaceError(
            [f"default configuration is invalid: {v}" for v in exc.violations], source=source
        ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise SpaceError(f"default configuration is invalid: {exc_text(exc)}",
                         source=source) from None
    for f in space.forbiddens:
        if f.is_forbidden(default):
            raise SpaceError(
                f"default configuration violates forbidden clause {f!r} "
                f"(parameters {', '.join(f.names)})",
                source=source,
            )
    return space
