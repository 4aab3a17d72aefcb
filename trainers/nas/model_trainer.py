"""Train a model that comes from somewhere other than a library space, with the ``nas`` trainer's
loop (:class:`trainers.nas.train.NasTrainer`: data, optimiser, schedule, objectives, checkpoints,
failure reports).

A *model source* is an object with

- ``space``: the :class:`~spaces.core.SearchSpace` of its architecture parameters;
- ``build_for_trial(arch_config, task, num_classes) -> (nn.Module, used_names)``: the model for a
  configuration of ``space`` and the names of the parameters that shaped it (for ``arch_id``).

:func:`train_model_source` splits a trial configuration into run settings
(:class:`~trainers.nas.settings.NasTrainConfig` fields) and architecture parameters, builds
through the source and trains; it reports what the ``nas`` trainer reports (``arch`` is the
source's ``name``, ``arch_id`` covers only the parameters the model read).
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from torch import nn

from trainers.api import TrialContext
from trainers.errors import TrainerError
from trainers.knobs import TASKS
from trainers.nas import register_builder
from trainers.nas.settings import NasTrainConfig, TrackedConfig
from trainers.nas.train import NasTrainer

__all__ = ["SOURCE_KEY", "split_source_config", "train_model_source"]

SOURCE_KEY = "_archtune_model_source"


def split_source_config(source: Any, config: Mapping[str, Any], settings: set[str] = frozenset()):
    """``(NasTrainConfig, architecture values)``; unknown keys raise :class:`TrainerError`.

    ``settings`` names extra keys the source itself reads (they are left out of both).
    """
    space = source.space
    run_fields = NasTrainConfig.field_names()
    known = run_fields | set(space.params) | set(settings) | {SOURCE_KEY}
    unknown = sorted(k for k in config if k not in known)
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, sorted(known), n=3, cutoff=0.6)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise TrainerError(f"unknown config key {k!r} for {getattr(source, 'name', 'model')}"
                           f"{hint}; valid: run settings {sorted(run_fields)} and the "
                           f"architecture parameters {sorted(space.params)}")
    run = {k: v for k, v in config.items() if k in run_fields}
    run["arch"] = str(getattr(source, "name", "model"))
    cfg = NasTrainConfig.from_dict(run)
    arch = {**space.default(), **{k: v for k, v in config.items() if k in space.params}}
    arch = space.canonical(arch)
    problems = space.violations(arch)
    if problems:
        raise TrainerError(f"invalid architecture for {run['arch']}: {'; '.join(problems)}")
    return cfg, arch


@register_builder("model_source", tasks=TASKS)
def _build_from_source(config: Mapping[str, Any], task: str, num_classes: int,
                       **overrides: Any) -> nn.Module:
    """Builder behind :func:`train_model_source` (the source travels in the config; the
    source's ``build_for_trial`` rejects the tasks it cannot build)."""
    source = dict.__getitem__(config, SOURCE_KEY)
    arch = {k: dict.__getitem__(config, k) for k in source.space.params if k in config}
    model, used = source.build_for_trial(arch, task, num_classes)
    for name in used:
        if name in config:
            config[name]  # noqa: B018 - records the read in the TrackedConfig
    return model


class _SourceTrainer(NasTrainer):
    def __init__(self, source: Any, config: Mapping[str, Any], ctx: TrialContext,
                 settings: set[str] = frozenset()):
        self.ctx = ctx
        self.cfg, arch = split_source_config(source, config, settings)
        self.cfg = _with_builder(self.cfg)
        self.space = source.space
        self.raw_config = {k: v for k, v in config.items() if k in NasTrainConfig.field_names()}
        self.builder_cfg = TrackedConfig({**arch, SOURCE_KEY: source})
        self.max_epochs = int(ctx.max_epochs)
        from trainers.runtime import resolve_device

        self.device = resolve_device(self.cfg.device)
        self.epoch = 0
        self.objectives: dict[str, float] = {}
        self.arch_id = ""
        self.model = None
        self._arch_name = str(getattr(source, "name", "model"))

    def _base_metrics(self) -> dict[str, Any]:
        out = super()._base_metrics()
        out["arch"] = self._arch_name
        return out


def _with_builder(cfg: NasTrainConfig) -> NasTrainConfig:
    import dataclasses

    return dataclasses.replace(cfg, arch="model_source")


def train_model_source(source: Any, config: Mapping[str, Any], ctx: TrialContext,
                       settings: set[str] = frozenset()) -> None:
    """Train the model ``source`` builds for ``config`` (see the module docstring).

    Raises:
        TrainerError: unknown keys or an invalid architecture, before anything is trained.
    """
    _SourceTrainer(source, config, ctx, settings).fit()

