"""Population-based training that only hands trainers configurations of the space.

Ray's PBT multiplies floats without clamping, moves every choice by +-1 index (as if it were
ordered), and knows nothing of conditions. :func:`explore_config` is archtune's explore step:

- with probability ``resample_probability`` a parameter is drawn afresh from its domain;
- an unordered categorical is always drawn afresh (it has no neighbours);
- an ordinal moves one position up or down;
- an Int or Float is multiplied by one of ``perturbation_factors`` (for a log-scale parameter a
  multiplication is a shift in log space) and moved back onto its domain (clamped, on its step);
- then the space repairs the configuration: children whose conditions now hold are sampled,
  children whose conditions no longer hold are dropped, forbidden results are redrawn.

:class:`SpacePBT` is Ray's ``PopulationBasedTraining`` with this explore; :func:`into_space`
maps PB2's continuous proposals onto the space (snapped, then repaired).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Mapping, Sequence

import numpy as np
from ray.train._internal.session import _TrainingResult
from ray.tune.schedulers import PopulationBasedTraining
from ray.tune.schedulers.pb2 import PB2

from spaces.compile.tune import INACTIVE, strip_inactive
from spaces.params import Categorical, ChoiceParam, Int

from .adapter import snap_to_space
from .checkpoints import tolerant
from .scheduler_state import ResumableScheduler

__all__ = ["SpacePB2", "SpacePBT", "explore_config", "into_space"]

log = logging.getLogger("archtune")


def _perturb(p: Any, v: Any, factor: float) -> Any:
    if isinstance(p, ChoiceParam):  # an ordinal: one position towards the factor's side
        vals = list(p.values)
        i = p.index(v) + (1 if factor > 1 else -1)
        return vals[min(max(i, 0), len(vals) - 1)]
    if isinstance(p, Int):
        moved = round(v * factor)
        if moved == v:  # small ints: at least one step
            moved = v + (p.step if factor > 1 else -p.step)
        return moved
    return v * factor


def _to_tune(space: Any, config: Mapping[str, Any], active: Mapping[str, Any]) -> dict:
    """``config``'s Tune form (helper keys kept) holding ``active`` and INACTIVE elsewhere."""
    out = dict(config)
    for n in space.params:
        out[n] = active.get(n, INACTIVE)
    return out


def into_space(space: Any, config: Mapping[str, Any], rng: np.random.Generator) -> dict:
    """``config`` (a Tune config, possibly with values off the domain or inactive parameters
    set) as a valid configuration of ``space`` in Tune form."""
    active = snap_to_space(space, strip_inactive(config))
    active = {k: v for k, v in active.items() if k in space.params}
    for _ in range(100):
        fixed = space.repair(active, rng)
        if not space.is_forbidden(fixed):
            return _to_tune(space, config, fixed)
        active = {k: v for k, v in active.items() if k in fixed}
    return _to_tune(space, config, space.sample(rng))


def explore_config(space: Any, config: Mapping[str, Any], names: Sequence[str],
                   rng: np.random.Generator, *, resample_probability: float = 0.25,
                   perturbation_factors: Sequence[float] = (1.2, 0.8)) -> tuple[dict, dict]:
    """One PBT explore of ``config`` (Tune form) over the mutable ``names``; returns the new
    Tune config (valid in ``space``) and ``{name: operation}`` for the log."""
    base = strip_inactive(config)
    for _ in range(100):
        new, ops = dict(base), {}
        for n in names:
            if n not in base:  # inactive in this configuration
                continue
            p = space.params[n]
            if isinstance(p, Categorical) or rng.random() < resample_probability:
                new[n], ops[n] = p.sample(rng), "resample"
            else:
                factor = float(perturbation_factors[int(rng.integers(len(perturbation_factors)))])
                new[n], ops[n] = _perturb(p, base[n], factor), f"* {factor}"
        out = into_space(space, {**config, **new}, rng)
        if space.is_valid(strip_inactive(out)):
            return out, ops
    return dict(config), {}


class _ResumablePBT(ResumableScheduler):
    """PBT state across a resume: each trial's perturbation clock and last result are kept;
    the checkpoints to clone from are not (they may be gone: the next perturbation saves
    fresh ones).

    An exploit copies the cloned trial's checkpoint into the exploiting trial's own folder:
    Ray would restore straight from the other trial's folder, whose checkpoint manager deletes
    that checkpoint once newer ones replace it, possibly before the exploiting trial (paused,
    waiting for a free slot, or restored by a resume) starts again."""

    def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
        source = self._trial_state[trial_to_clone].last_checkpoint
        copied = _own_copy(trial, source) if source is not None else None
        if copied is None:
            log.warning("trial %s: the checkpoint of %s to clone is gone; exploit skipped",
                        trial.trial_id, trial_to_clone.trial_id)
            return  # the trial keeps its own state
        super()._exploit(tune_controller, trial, trial_to_clone)
        manager = tolerant(trial)
        latest = manager._latest_checkpoint_result
        manager.register_checkpoint(_TrainingResult(checkpoint=copied, metrics=dict(
            latest.metrics if latest is not None else {})))

    def _archtune_knows(self, trial: Any) -> bool:
        return trial in self._trial_state

    def _archtune_sanitize(self, state: dict) -> dict:
        import copy

        kept = {}
        for trial, ts in state.get("_trial_state", {}).items():
            ts = copy.copy(ts)
            ts.last_checkpoint = None
            kept[trial] = ts
        return {**state, "_trial_state": kept}


def _own_copy(trial: Any, checkpoint: Any) -> Any:
    """``checkpoint`` copied into ``trial``'s folder (a Ray ``Checkpoint``), or ``None`` when
    it is gone (its trial's manager may delete it while it is copied). The copy's folder name
    is one Tune never writes: a checkpoint the paused trial still had in flight takes Tune's
    next ``checkpoint_NNNNNN`` name, and two manager entries for one folder would let the
    manager delete a checkpoint it still lists."""
    import posixpath
    import uuid

    import pyarrow.fs as pafs
    from ray.tune import Checkpoint

    storage = trial.storage
    dest = posixpath.join(storage.trial_fs_path, f"exploited_{uuid.uuid4().hex[:12]}")
    fs = storage.storage_filesystem
    try:
        if checkpoint.filesystem.get_file_info(checkpoint.path).type == pafs.FileType.NotFound:
            return None
        fs.create_dir(dest, recursive=True)
        pafs.copy_files(checkpoint.path, dest, source_filesystem=checkpoint.filesystem,
                        destination_filesystem=fs)
    except OSError as e:
        log.warning("exploit copy %s -> %s failed: %s", checkpoint.path, dest, e)
        try:
            fs.delete_dir(dest)
        except OSError:
            pass
        return None
    return Checkpoint(dest, fs)


class SpacePBT(_ResumablePBT, PopulationBasedTraining):
    """Ray's PBT whose explore step is :func:`explore_config` over ``space``."""

    def __init__(self, *, space: Any, seed: int | None = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._space = space
        self._rng = np.random.default_rng(seed)

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        return explore_config(self._space, trial_to_clone.config,
                              list(self._hyperparam_mutations), self._rng,
                              resample_probability=self._resample_probability,
                              perturbation_factors=self._perturbation_factors)


class _SearchView:
    """A trial as PB2 sees it: the same trial, its config in PB2's search coordinates."""

    def __init__(self, trial: Any, config: dict) -> None:
        self._trial, self.config = trial, config

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trial, name)

    def __str__(self) -> str:
        return str(self._trial)

    __repr__ = __str__


class SpacePB2(_ResumablePBT, PB2):
    """Ray's PB2 whose proposals are moved onto ``space`` (snapped to the domains, conditional
    children repaired) before they become a trial's configuration. Log-scale parameters are
    modelled and proposed in log space (PB2 sees ``ln(value)`` on ``[ln(low), ln(high)]``)."""

    def __init__(self, *, space: Any, seed: int | None = 0, **kwargs: Any) -> None:
        bounds = dict(kwargs.pop("hyperparam_bounds", {}))
        self._log_keys = tuple(n for n in bounds if getattr(space.params.get(n), "log", False))
        for n in self._log_keys:
            bounds[n] = [math.log(bounds[n][0]), math.log(bounds[n][1])]
        super().__init__(hyperparam_bounds=bounds, **kwargs)
        self._space = space
        self._rng = np.random.default_rng(seed)

    def to_search(self, config: Mapping[str, Any]) -> dict:
        """``config`` with its log-scale values as logarithms (PB2's coordinates)."""
        out = dict(config)
        for n in self._log_keys:
            v = out.get(n)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                out[n] = math.log(v)
        return out

    def from_search(self, config: Mapping[str, Any]) -> dict:
        """The inverse of :meth:`to_search`."""
        out = dict(config)
        for n in self._log_keys:
            v = out.get(n)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[n] = math.exp(v)
        return out

    def _view(self, trial: Any) -> _SearchView:
        return _SearchView(trial, self.to_search(trial.config))

    def _save_trial_state(self, state: Any, time: int, result: dict, trial: Any) -> Any:
        return super()._save_trial_state(state, time, result, self._view(trial))

    def _get_new_config(self, trial: Any, trial_to_clone: Any) -> tuple[dict, dict]:
        new, ops = super()._get_new_config(self._view(trial), self._view(trial_to_clone))
        return into_space(self._space, self.from_search(new), self._rng), ops
