"""The registry of built-in search spaces (factories ``fn(**kw) -> SearchSpace``)."""
from __future__ import annotations

from typing import Any, Callable

from spaces.errors import SpaceError
from spaces.registry import Registry

__all__ = ["SPACES", "get_space", "list_spaces", "register_space"]

SPACES: Registry = Registry(
    "space", error=SpaceError, cutoff=0.6,
    modules=tuple(f"spaces.library.{m}" for m in (
        "quicktune", "spinenet", "nasfpn", "mnasnet", "efficientnetv2", "augment")),
)


def register_space(name: str, **meta: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a space factory under a lower-cased ``name``."""
    return SPACES.register(name, replace=True, **meta)


def list_spaces(filter: str = "*") -> list[str]:
    """Registered space names matching the fnmatch ``filter``, sorted."""
    return SPACES.list(filter)


def get_space(name: str, **kw: Any):
    """Build the registered space ``name`` (keyword arguments go to its factory)."""
    return SPACES.create(name, **kw)
