"""Built-in search spaces, looked up by name.

    @register_space("my_space")
    def my_space(**kw) -> SearchSpace: ...

    get_space("quicktune")          # -> SearchSpace
    list_spaces("spinenet*")        # fnmatch filter, sorted
"""
from __future__ import annotations

from spaces.library.quicktune import quicktune, quicktune_cpu
from spaces.library.registry import SPACES, get_space, list_spaces, register_space

__all__ = ["SPACES", "register_space", "get_space", "list_spaces", "quicktune", "quicktune_cpu"]
