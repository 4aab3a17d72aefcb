"""Trainers: what one trial does (torch + timm; never Ray).

A trainer is a callable ``trainer(config: dict, ctx: TrialContext) -> None``. Trainers are found
by name in a small registry::

    get_trainer("finetune")            # trainers.finetune.train
    get_trainer("nas")                 # trainers.nas.train:train
    get_trainer("mypkg.mymod:train")   # any importable function
    register_trainer("mine")(fn)       # add your own

Built-in trainers are imported lazily so ``import trainers`` stays cheap.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Callable

from spaces.errors import TrainerError

__all__ = ["get_trainer", "list_trainers", "register_trainer"]

TrainerFn = Callable[..., None]

# name -> callable, or "module:function" resolved on first use
_REGISTRY: dict[str, TrainerFn | str] = {
    "finetune": "trainers.finetune:train",
    "nas": "trainers.nas.train:train",
}


def register_trainer(name: str, fn: TrainerFn | None = None):
    """Register ``fn`` under ``name`` (lower-cased). Usable as a decorator::

        @register_trainer("mine")
        def train(config, ctx): ...
    """
    if not isinstance(name, str) or not name or ":" in name:
        raise TrainerError(f"trainer name must be a non-empty string without ':', got {name!r}")

    def decorator(func: TrainerFn) -> TrainerFn:
        if not callable(func):
            raise TrainerError(f"trainer {name!r} must be callable, got {func!r}")
        _REGISTRY[name.lower()] = func
        return func

    return decorator(fn) if fn is not None else decorator


def list_trainers(filter: str = "*") -> list[str]:
    """Registered trainer names matching the fnmatch ``filter``, sorted."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, filter.lower()))


def _import(target: str) -> TrainerFn:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise TrainerError(f"trainer reference must look like 'module:function', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TrainerError(f"cannot import trainer module {module_name!r}: {exc}") from exc
    fn = module
    for part in attr.split("."):
        try:
            fn = getattr(fn, part)
        except AttributeError:
            raise TrainerError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not callable(fn):
        raise TrainerError(f"trainer {target!r} is not callable")
    return fn


def get_trainer(name: str | TrainerFn) -> TrainerFn:
    """The trainer callable for a registered name, a ``"module:function"`` path, or a callable.

    Raises:
        TrainerError: unknown name (listing the closest registered names) or failed import.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or not name:
        raise TrainerError(f"trainer must be a name or 'module:function', got {name!r}")
    if ":" in name:
        return _import(name)
    entry = _REGISTRY.get(name.lower())
    if entry is None:
        close = difflib.get_close_matches(name.lower(), list(_REGISTRY), n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise TrainerError(
            f"unknown trainer {name!r}{hint} Registered: {', '.join(list_trainers())}; "
            "or give 'module:function'."
        )
    if isinstance(entry, str):
        entry = _import(entry)
        _REGISTRY[name.lower()] = entry
    return entry
