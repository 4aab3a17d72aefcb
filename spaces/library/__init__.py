"""Built-in search spaces, looked up by name.

    @register_space("my_space")
    def my_space(**kw) -> SearchSpace: ...

    get_space("quicktune")          # -> SearchSpace
    list_spaces("spinenet*")        # fnmatch filter, sorted
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Callable

from spaces.core import SearchSpace
from spaces.errors import SpaceError

_REGISTRY: dict[str, Callable[..., SearchSpace]] = {}
# modules that register spaces when imported (missing ones are skipped: other streams add them)
_MODULES = ("quicktune", "spinenet", "nasfpn", "mnasnet", "efficientnetv2", "augment")
_loaded = False


def register_space(name: str) -> Callable[[Callable[..., SearchSpace]], Callable[..., SearchSpace]]:
    """Decorator registering a space factory under a lower-cased ``name``."""
    key = name.lower()

    def deco(fn: Callable[..., SearchSpace]) -> Callable[..., SearchSpace]:
        _REGISTRY[key] = fn
        return fn

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _MODULES:
        try:
            importlib.import_module(f"spaces.library.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"spaces.library.{mod}":
                raise


def list_spaces(filter: str = "*") -> list[str]:
    """Registered space names matching the fnmatch ``filter``, sorted."""
    _load_all()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, filter.lower()))


def get_space(name: str, **kw) -> SearchSpace:
    """Build the registered space ``name`` (keyword arguments go to its factory)."""
    _load_all()
    key = str(name).lower()
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, list(_REGISTRY), n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise SpaceError(f"unknown space {name!r}{hint} (known: {sorted(_REGISTRY)})")
    return _REGISTRY[key](**kw)


from spaces.library.quicktune import quicktune, quicktune_cpu  # noqa: E402

__all__ = ["register_space", "get_space", "list_spaces", "quicktune", "quicktune_cpu"]
