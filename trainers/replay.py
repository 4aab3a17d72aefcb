"""The ``replay`` trainer: serve recorded learning curves instead of training.

A table recorded by ``bench/record_curves.py`` (``bench/data/TASK.json.gz``) holds, per
configuration, the per-epoch validation accuracy and wall time and, for a failed trial, the error
and what it cost. :func:`train` reports a configuration's recorded curve through ``ctx.report``,
one epoch at a time, so archtune's real runner, searchers and schedulers run on it unchanged.

Time is **scaled sleeps**: before each epoch's report the trainer sleeps ``replay_time_scale``
times the recorded epoch time (``0`` = no sleep). Trials therefore reach each epoch in the same
order as they did live (a cheap configuration reports sooner than an expensive one), which is
what asynchronous schedulers (ASHA, Hyperband, median stopping) react to; the scale only has to
keep a recorded epoch well above the runner's per-result overhead (a few ms). Budgets are counted
in recorded seconds (the ``epoch_time_s`` reported), never in the replay's wall time.

A configuration outside the table is answered by its nearest recorded neighbour in the space's
encoding (1-NN over min-max scaled :meth:`SearchSpace.encode` vectors, inactive = -1), as
Quick-Tune's benchmark did for its baselines; the report says so (``replay_nn = 1``).

Config keys read (besides the space's parameters): ``replay_table`` (path, required),
``replay_time_scale`` (float >= 0, default 0) and ``replay_ledger`` (optional path: one JSON line
per served epoch, for harnesses that count budget across processes). Every other key (data
settings) is ignored.
"""
from __future__ import annotations

import functools
import gzip
import json
import os
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from trainers.api import TrialContext
from trainers.errors import TrainerError

__all__ = ["ReplayTable", "ReplayedFailure", "load_table", "open_table", "train"]


class ReplayedFailure(RuntimeError):
    """A recorded trial failed; the replay fails the same way (after the same cost)."""


def load_table(path: str | os.PathLike) -> dict:
    """A recorded table (gzip JSON: ``task``, ``space``, ``fixed``, ``max_epochs``, ``rows``...).

    Raises:
        TrainerError: the file is missing or is not a table.
    """
    p = Path(path)
    if not p.is_file():
        raise TrainerError(f"replay_table: {str(path)!r} not found (record one with "
                           f"`python bench/record_curves.py TASK`)")
    try:
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            table = json.load(fh)
    except (OSError, ValueError) as exc:
        raise TrainerError(f"replay_table: {str(path)!r} is not a gzip JSON table: {exc}") from exc
    if not isinstance(table, dict) or not isinstance(table.get("rows"), list):
        raise TrainerError(f"replay_table: {str(path)!r} has no 'rows' list")
    return table


class ReplayTable:
    """A recorded table indexed for exact (``config_id``) and 1-NN lookup.

    Attributes:
        space: the table's space with its ``fixed`` values applied.
        rows: the recorded rows (``config``, ``val_acc``, ``epoch_s``, ``cost_s``, ``error``).
        max_epochs: epochs every successful row was trained for.
    """

    def __init__(self, table: Mapping[str, Any]) -> None:
        from spaces.library.registry import SPACES

        self.table = dict(table)
        self.task = str(table.get("task", "?"))
        self.max_epochs = int(table["max_epochs"])
        self.space = SPACES.create(table.get("space", "quicktune_cpu")).with_fixed(
            dict(table.get("fixed", {})))
        self.rows = list(table["rows"])
        self._by_id = {}
        for i, row in enumerate(self.rows):
            self._by_id.setdefault(self.config_id(row["config"]), i)
        enc = np.stack([self._raw(r["config"]) for r in self.rows])
        finite = np.where(np.isfinite(enc), enc, np.nan)
        self._lo = np.nan_to_num(np.nanmin(finite, axis=0), nan=0.0)
        span = np.nan_to_num(np.nanmax(finite, axis=0), nan=1.0) - self._lo
        self._span = np.where(span > 0, span, 1.0)
        self._enc = self._scale(enc)

    def config_id(self, config: Mapping[str, Any]) -> str:
        """The space's id of ``config`` (only the space's parameters count)."""
        return self.space.config_id({k: v for k, v in config.items() if k in self.space})

    def _raw(self, config: Mapping[str, Any]) -> np.ndarray:
        return self.space.encode({k: v for k, v in config.items() if k in self.space})

    def _scale(self, enc: np.ndarray) -> np.ndarray:
        out = (enc - self._lo) / self._span
        return np.where(np.isfinite(out), out, -1.0)

    def lookup(self, config: Mapping[str, Any]) -> tuple[int, bool]:
        """``(row index, answered_by_nearest_neighbour)`` for ``config``."""
        hit = self._by_id.get(self.config_id(config))
        if hit is not None:
            return hit, False
        x = self._scale(self._raw(config)[None, :])[0]
        return int(np.argmin(((self._enc - x) ** 2).sum(axis=1))), True

    def curve(self, index: int) -> tuple[list[float], list[float]]:
        """(per-epoch val_acc, per-epoch seconds) of a row."""
        row = self.rows[index]
        return list(row["val_acc"]), list(row["epoch_s"])

    def failure(self, index: int) -> tuple[str, float] | None:
        """(error, seconds it cost) of a failed row, else ``None``."""
        row = self.rows[index]
        return (row["error"], float(row["cost_s"])) if row.get("error") else None


@functools.lru_cache(maxsize=8)
def open_table(path: str) -> ReplayTable:
    """The :class:`ReplayTable` of a file, cached per process."""
    return ReplayTable(load_table(path))


def _settings(config: Mapping[str, Any]) -> tuple[ReplayTable, float, Path | None]:
    path = config.get("replay_table")
    if not path:
        raise TrainerError("replay: config key 'replay_table' (path of a recorded table) is "
                           "required; set it under the experiment's data settings")
    scale = config.get("replay_time_scale", 0.0)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0:
        raise TrainerError(f"replay_time_scale must be a number >= 0, got {scale!r}")
    ledger = config.get("replay_ledger")
    return open_table(str(path)), float(scale), Path(ledger) if ledger else None


def _log(ledger: Path | None, **entry: Any) -> None:
    if ledger is not None:
        with open(ledger, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"t": time.time(), **entry}) + "\n")


def train(config: dict, ctx: TrialContext) -> None:
    """Report the recorded curve of ``config`` (its own row, else its nearest neighbour's).

    Metrics per epoch: ``epoch``, ``val_acc``, ``epoch_time_s`` (recorded), ``diverged``,
    ``replay_row`` and ``replay_nn`` (1 when the 1-NN lookup answered). A recorded failure
    raises :class:`ReplayedFailure` after its (scaled) cost. Stops early when the runner asks
    (``ctx.should_stop()``) and never reports beyond ``ctx.max_epochs``.

    Raises:
        TrainerError: no or unreadable ``replay_table``, or a bad ``replay_time_scale``.
    """
    table, scale, ledger = _settings(config)
    index, nn = table.lookup(config)
    failed = table.failure(index)
    if failed is not None:
        error, cost = failed
        time.sleep(cost * scale)
        _log(ledger, row=index, nn=int(nn), epoch=0, cost=cost, val_acc=None, failed=1)
        raise ReplayedFailure(f"replayed failure of table row {index}: {error}")
    accs, secs = table.curve(index)
    diverged = bool(table.rows[index].get("diverged"))
    for epoch in range(min(len(accs), int(ctx.max_epochs))):
        time.sleep(secs[epoch] * scale)
        last = diverged and epoch == len(accs) - 1
        _log(ledger, row=index, nn=int(nn), epoch=epoch + 1, cost=secs[epoch],
             val_acc=accs[epoch], failed=0)
        ctx.report({"epoch": epoch + 1, "val_acc": float(accs[epoch]),
                    "epoch_time_s": float(secs[epoch]), "diverged": int(last),
                    "replay_row": index, "replay_nn": int(nn)})
        if ctx.should_stop():
            break
