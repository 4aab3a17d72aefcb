"""The Ray side of the trial contract: a TrialContext over ``ray.tune`` and the function
trainable that turns a Tune config into ``trainer(config, ctx)``."""
from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from ray import tune

from orchestrator.checkpoints import checkpoint_problem, sibling_checkpoints, write_manifest
from orchestrator.trials import DUPLICATE_KEY, MARKER_KEYS, REUSE_KEY, trial_dirname_for
from spaces.compile.tune import strip_inactive
from trainers.api import TrialContext

__all__ = ["DUPLICATE_KEY", "MARKER_KEYS", "REUSE_KEY", "RayTrialContext", "make_trainable",
           "snap_to_space", "stop_diverged"]


class RayTrialContext(TrialContext):
    """TrialContext for a trial running inside Ray Tune.

    ``report`` wraps ``ray.tune.report`` (with ``Checkpoint.from_directory`` when the trainer
    gives a checkpoint folder); ``restore_dir`` is the trial's latest checkpoint (own, after a
    retry or resume; another trial's, after a PBT exploit) materialised inside the trial dir.
    """

    def __init__(self, *, seed: int, max_epochs: int, num_cpus: int = 1,
                 exp_dir: str | None = None, logger: logging.Logger | None = None,
                 metric: str | None = None) -> None:
        ctx = tune.get_context()
        self.trial_id = ctx.get_trial_id() or "local"
        if exp_dir and "://" not in exp_dir:
            # the trial's own folder in the experiment storage (stable across retries,
            # resumes and actor reuse; Ray's get_trial_dir() is a per-actor scratch dir)
            self._trial_dir = Path(exp_dir) / trial_dirname_for(self.trial_id)
        else:
            self._trial_dir = Path(ctx.get_trial_dir() or tempfile.mkdtemp(prefix="archtune_"))
        self._trial_dir.mkdir(parents=True, exist_ok=True)
        self.trial_name = ctx.get_trial_name() or self.trial_id
        self.seed = int(seed)
        self.max_epochs = int(max_epochs)
        self.num_cpus = max(1, int(_trial_cpus(ctx, num_cpus)))
        self.logger = logger or logging.getLogger(f"archtune.trial.{self.trial_name}")
        self._restore_dir: Path | None = None
        self._restore_loaded = False
        self.reports = 0
        self._metric = metric

    # --- TrialContext -------------------------------------------------------------------
    @property
    def trial_dir(self) -> Path:
        return self._trial_dir

    @property
    def restore_dir(self) -> Path | None:
        if not self._restore_loaded:
            self._restore_loaded = True
            ckpt = tune.get_checkpoint()
            if ckpt is not None:
                self._restore_dir = self._intact_copy(ckpt)
        return self._restore_dir

    def _intact_copy(self, ckpt: Any) -> Path | None:
        """``ckpt`` copied into the trial folder; when it fails its manifest (truncated or
        changed on disk), the newest intact other checkpoint of the same trial folder
        instead; ``None`` (start from scratch) when none is intact."""
        dest = self._trial_dir / "restore"
        for candidate in [ckpt, *sibling_checkpoints(ckpt)]:
            if dest.exists():
                shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            try:
                got = Path(candidate.to_directory(str(dest)))
            except OSError as e:
                problem = f"unreadable ({e})"
            else:
                problem = checkpoint_problem(got)
                if problem is None:
                    if candidate is not ckpt:
                        self.logger.warning("trial %s: restoring from %s instead",
                                            self.trial_id, candidate.path)
                    return got
            self.logger.warning("trial %s: checkpoint %s is damaged: %s",
                                self.trial_id, candidate.path, problem)
        self.logger.warning("trial %s: no intact checkpoint; training from scratch",
                            self.trial_id)
        shutil.rmtree(dest, ignore_errors=True)
        return None

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: str | Path | None = None) -> None:
        clean = {k: _clean_value(v) for k, v in metrics.items()}
        value = clean.get(self._metric)
        if isinstance(value, float) and math.isnan(value):
            clean["diverged"] = 1  # Tune stops the trial (stop_diverged)
        self.reports += 1
        if checkpoint_dir is not None:
            write_manifest(checkpoint_dir)
            tune.report(clean, checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))
        else:
            tune.report(clean)


def _trial_cpus(ctx: Any, default: float) -> float:
    """CPUs Ray reserved for this trial (fractional reservations round down, min 1)."""
    try:
        return float(ctx.get_trial_resources().required_resources.get("CPU", default))
    except Exception:  # noqa: BLE001 - outside Tune or an older resources API
        return default


def _clean_value(v: Any) -> Any:
    """Tune and TensorBoard want finite plain numbers; inf/nan become 1e9 / stay nan."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isinf(v):
        return 1e9 if v > 0 else -1e9
    return v


def stop_diverged(trial_id: str, result: Mapping[str, Any]) -> bool:
    """Tune stop condition: a trial that reported ``diverged`` (its trainer said so, or its
    metric was NaN) trains no further."""
    return bool(result.get("diverged"))


def make_trainable(*, trainer: Callable, space: Any, data: Mapping[str, Any],
                   fixed: Mapping[str, Any], seed: int, max_epochs: int, num_cpus: float,
                   snap: bool = False, exp_dir: str | None = None,
                   metric: str | None = None) -> Callable[[dict], None]:
    """Function trainable: Tune config -> merge data settings + fixed -> drop inactive ->
    ``trainer(config, RayTrialContext)``. A config the searcher marked as a duplicate reports
    the earlier trial's result without training. ``snap`` maps PB2's continuous proposals onto
    the space's values. A report whose ``metric`` is NaN is marked ``diverged``."""
    data = dict(data)
    fixed = dict(fixed)

    def archtune_trial(config: dict) -> None:
        cfg = dict(config)
        reuse = cfg.pop(REUSE_KEY, None)
        dup_of = cfg.pop(DUPLICATE_KEY, None)
        if reuse is not None:
            out = dict(reuse)
            out["duplicate"] = 1
            out["duplicate_of"] = str(dup_of)
            tune.report({k: _clean_value(v) for k, v in out.items()})
            return
        cfg = strip_inactive(cfg)
        if snap:
            cfg = snap_to_space(space, cfg)
        cfg.update(fixed)
        try:
            cfg = space.canonical(cfg)
        except Exception:  # noqa: BLE001 - canonical is a normaliser; keep the raw config
            pass
        trial_cfg = {**data, **cfg}
        digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()
        trial_seed = seed + int(digest[:8], 16) % 10_000
        ctx = RayTrialContext(seed=trial_seed, max_epochs=max_epochs, num_cpus=num_cpus,
                              exp_dir=exp_dir, metric=metric)
        trainer(trial_cfg, ctx)

    return archtune_trial


def snap_to_space(space: Any, cfg: dict) -> dict:
    """``cfg`` with every numeric value moved onto its parameter's domain: PB2 proposes any
    real in ``[min, max]``, also for Int and for choices of numbers. Int: rounded to its step
    grid and clamped; a choice (or stepped Float): the nearest allowed number; Float: clamped.
    Values already valid are normalised (``2.0`` -> ``2`` for an Int); NumPy scalars become
    Python numbers; non-numeric values are left as they are."""
    out = dict(cfg)
    for name, v in cfg.items():
        if name not in space:
            continue
        if isinstance(v, np.generic):
            v = out[name] = v.item()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            continue
        p = space[name]
        try:
            if p.contains(v):
                out[name] = p.normalize(v)
                continue
        except Exception:  # noqa: BLE001 - contains/normalize are best effort here
            pass
        kind = type(p).__name__
        if kind == "Int":
            k = min(max(round((v - p.low) / p.step), 0), (p.high - p.low) // p.step)
            out[name] = int(p.low + k * p.step)
        elif getattr(p, "is_discrete", False):
            vals = [x for x in p.values
                    if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if vals:
                out[name] = min(vals, key=lambda x: abs(x - v))
        elif hasattr(p, "low"):
            out[name] = float(min(max(v, p.low), p.high))
    return out
