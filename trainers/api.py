"""The trial contract between a trainer and whoever runs it.

A trainer is a plain callable ``trainer(config: dict, ctx: TrialContext) -> None``. It reads its
hyperparameters from ``config``, reports metrics once per epoch through ``ctx.report`` (optionally
with a checkpoint directory) and resumes from ``ctx.restore_dir`` when that is set. Nothing here
imports Ray: the orchestrator provides its own ``TrialContext`` implementation; this module
provides :class:`LocalContext` for ``archtune train`` and the tests.
"""
from __future__ import annotations

import abc
import csv
import json
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Any

from trainers.errors import TrainerError

__all__ = ["TrialContext", "LocalContext"]


class TrialContext(abc.ABC):
    """What a trainer may ask of the system running it.

    Attributes:
        restore_dir: directory of a checkpoint to resume from (``None`` on a fresh start).
        trial_dir: a writable directory that belongs to this trial.
        seed: the trial's seed; the trainer seeds every RNG from it.
        max_epochs: the experiment's epoch budget; schedules are sized to it even when a
            scheduler (ASHA, PBT) stops the trial earlier.
        logger: where the trainer logs.
        num_cpus: CPU threads the trainer may use (``torch.set_num_threads``).
    """

    restore_dir: Path | None = None
    trial_dir: Path
    seed: int = 0
    max_epochs: int = 1
    logger: logging.Logger = logging.getLogger("archtune.trial")
    num_cpus: int = 1

    @abc.abstractmethod
    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        """Record one result (one per epoch). ``checkpoint_dir`` is copied before this returns,
        so the trainer may delete it afterwards."""

    def should_stop(self) -> bool:
        """True when the runner wants the trainer to stop after the current epoch."""
        return False


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class LocalContext(TrialContext):
    """A :class:`TrialContext` that runs in-process and keeps everything under ``trial_dir``.

    Each report appends a row to ``metrics.jsonl``, rewrites ``metrics.csv`` (columns are the
    union of all keys seen), and writes TensorBoard scalars under ``trial_dir/tensorboard``.
    A reported checkpoint directory is copied to ``trial_dir/checkpoints/epoch_XXXX``
    (``XXXX`` = the metrics' ``epoch``, else the report count) and becomes ``last_checkpoint``.

    Example::

        ctx = LocalContext("runs/t0", seed=0, max_epochs=3)
        trainers.get_trainer("finetune")({"model": "resnet10t"}, ctx)
        ctx.results[-1]["val_acc"]
    """

    def __init__(
        self,
        trial_dir: str | os.PathLike,
        seed: int = 0,
        max_epochs: int = 10,
        restore_dir: str | os.PathLike | None = None,
        num_cpus: int | None = None,
        echo: bool = True,
        tensorboard: bool = True,
    ) -> None:
        if int(max_epochs) < 1:
            raise TrainerError(f"max_epochs must be >= 1, got {max_epochs!r}")
        self.trial_dir = Path(trial_dir)
        self.trial_dir.mkdir(parents=True, exist_ok=True)
        self.seed = int(seed)
        self.max_epochs = int(max_epochs)
        self.restore_dir = Path(restore_dir) if restore_dir is not None else None
        self.num_cpus = int(num_cpus) if num_cpus else max(1, os.cpu_count() or 1)
        self.echo = echo
        self.logger = logging.getLogger(f"archtune.trial.{self.trial_dir.name}")
        self.results: list[dict] = []
        self.last_checkpoint: Path | None = None
        self._stop = False
        self._tensorboard = tensorboard
        self._writer = None

    # -- TrialContext -----------------------------------------------------------------------
    def report(self, metrics: dict, checkpoint_dir: Path | None = None) -> None:
        row = {k: _jsonable(v) for k, v in metrics.items()}
        self.results.append(row)
        with open(self.trial_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        self._write_csv()
        self._write_tensorboard(row)
        if checkpoint_dir is not None:
            step = int(row.get("epoch", len(self.results)))
            dest = self.trial_dir / "checkpoints" / f"epoch_{step:04d}"
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(checkpoint_dir, dest)
            self.last_checkpoint = dest
        if self.echo:
            shown = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()
            )
            self.logger.info(shown)
            print(shown, flush=True)

    def should_stop(self) -> bool:
        return self._stop

    def request_stop(self) -> None:
        """Ask the trainer to stop after its current epoch."""
        self._stop = True

    # -- helpers ----------------------------------------------------------------------------
    def _write_csv(self) -> None:
        columns: list[str] = []
        for row in self.results:
            columns += [k for k in row if k not in columns]
        tmp = self.trial_dir / "metrics.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(self.results)
        os.replace(tmp, self.trial_dir / "metrics.csv")

    def _write_tensorboard(self, row: dict) -> None:
        if not self._tensorboard:
            return
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except Exception:  # tensorboard missing: metrics files are still written
                self._tensorboard = False
                return
            self._writer = SummaryWriter(log_dir=str(self.trial_dir / "tensorboard"))
        step = int(row.get("epoch", len(self.results)))
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                self._writer.add_scalar(key, value, step)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
