"""Trainers: what one trial does (torch + timm; never Ray).

A trainer is a callable ``trainer(config: dict, ctx: TrialContext) -> None``. Trainers are found
by name in :data:`TRAINERS` (one :class:`spaces.registry.Registry`)::

    get_trainer("finetune")            # trainers.finetune.train
    get_trainer("nas")                 # trainers.nas.train:train
    get_trainer("mypkg.mymod:train")   # any importable function
    register_trainer("mine")(fn)       # add your own
    TRAINERS.meta("finetune")["checkpoints"]   # declared capability flags

Declared metadata: ``checkpoints`` (the trainer saves and restores full state through
``ctx``; PBT/PB2 and pausing schedulers need it). Built-in trainers are registered lazily so
``import trainers`` stays cheap.
"""
from __future__ import annotations

from typing import Any, Callable

from spaces.registry import Registry, import_object
from trainers.errors import TrainerError

__all__ = ["TRAINERS", "TrainerError", "get_trainer", "list_trainers", "register_trainer",
           "trainer_meta"]

TrainerFn = Callable[..., None]

TRAINERS: Registry = Registry("trainer", error=TrainerError, cutoff=0.4)
TRAINERS.register("finetune", "trainers.finetune:train", checkpoints=True)
TRAINERS.register("nas", "trainers.nas.train:train", checkpoints=True)
TRAINERS.register("replay", "trainers.replay:train", checkpoints=False)
TRAINERS.register("compose", "trainers.compose.trainer:train", checkpoints=True)
TRAINERS.register("supernet", "trainers.oneshot.train:train_supernet", checkpoints=True)


def register_trainer(name: str, fn: TrainerFn | None = None, *, checkpoints: bool = True,
                     **meta: Any):
    """Register ``fn`` under ``name`` (lower-cased); usable as a decorator::

        @register_trainer("mine", checkpoints=False)
        def train(config, ctx): ...
    """
    def decorator(func: TrainerFn) -> TrainerFn:
        if not callable(func):
            raise TrainerError(f"trainer {name!r} must be callable, got {func!r}")
        TRAINERS.register(name, func, replace=True, checkpoints=checkpoints, **meta)
        return func

    return decorator(fn) if fn is not None else decorator


def list_trainers(filter: str = "*") -> list[str]:
    """Registered trainer names matching the fnmatch ``filter``, sorted."""
    return TRAINERS.list(filter)


def get_trainer(name: str | TrainerFn) -> TrainerFn:
    """The trainer callable for a registered name, a ``"module:function"`` path, or a callable.

    Raises:
        TrainerError: unknown name (listing the closest registered names) or failed import.
    """
    if callable(name):
        return name
    if not isinstance(name, str) or not name:
        raise TrainerError(f"trainer must be a name or 'module:function', got {name!r}")
    fn = import_object(name, error=TrainerError, what="trainer") if ":" in name \
        else TRAINERS.get(name)
    if not callable(fn):
        raise TrainerError(f"trainer {name!r} is not callable")
    return fn


def trainer_meta(name: str | TrainerFn) -> dict[str, Any]:
    """Declared capabilities of a trainer: the registry's metadata for a registered name,
    else the callable's own attributes (``checkpoints``; the older ``supports_checkpoint``
    spelling is read too). Unknown capabilities default to ``checkpoints=True``."""
    if isinstance(name, str) and ":" not in name and name in TRAINERS:
        return dict(TRAINERS.meta(name))
    fn = get_trainer(name)
    flag = getattr(fn, "checkpoints", getattr(fn, "supports_checkpoint", True))
    return {"checkpoints": bool(flag)}
