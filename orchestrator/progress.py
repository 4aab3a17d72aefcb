"""A compact live progress view of an experiment (a Ray Tune callback).

One line: ``[name] 12/20 done (3 pruned, 1 errored, 1 dup) | 2 running | best val_acc=0.9312
(trial 4b2c_00003) | 1m23s``. On a TTY the line refreshes in place (carriage return); otherwise
a new line is printed only when the counts or the best change.
Retries (a failed trial restarted from its checkpoint) are counted and saved to
``retries.json`` in the experiment folder so the results table survives a resume.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback

from . import storage
from .selection import select_best

__all__ = ["ProgressCallback", "classify"]


class ProgressCallback(Callback):
    def __init__(self, name: str, metric: str, mode: str, max_epochs: int,
                 exp_dir: str | Path | None = None, stream: TextIO | None = None,
                 total: int | None = None, enabled: bool = True,
                 filesystem: Any = None) -> None:
        self.name = name
        self.metric = metric
        self.mode = mode
        self.max_epochs = max_epochs
        self.exp_dir = str(exp_dir) if exp_dir else None  # a local folder or a URI
        self._fs = filesystem
        self.total = total
        self.enabled = enabled
        self._stream = stream
        self.retries: dict[str, int] = self._load_retries()
        self.status: dict[str, str] = {}
        self.running: set[str] = set()
        self.best: float | None = None
        self.best_trial: str | None = None
        self._last: dict[str, dict] = {}
        self._t0 = time.time()
        self._last_line = ""
        self._last_print = 0.0
        self._elapsed0 = 0.0  # time spent before a resume

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_stream"] = None
        return d

    # --- Tune's experiment snapshot: a resumed experiment counts on from here -----------
    def get_state(self) -> dict:
        return {"status": dict(self.status), "best": self.best, "best_trial": self.best_trial,
                "retries": dict(self.retries), "elapsed": time.time() - self._t0}

    def set_state(self, state: dict) -> None:
        self.status = dict(state.get("status", {}))
        self.best, self.best_trial = state.get("best"), state.get("best_trial")
        for tid, n in state.get("retries", {}).items():
            self.retries[tid] = max(n, self.retries.get(tid, 0))
        self._elapsed0 = float(state.get("elapsed", 0.0))

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout

    def _stream_is_tty(self) -> bool:
        try:
            return bool(self.stream.isatty())
        except (AttributeError, ValueError):  # closed or minimal stream
            return False

    # --- persistence ------------------------------------------------------------------
    def _retries_file(self) -> "storage.Location | None":
        return storage.resolve(self.exp_dir, self._fs) / "retries.json" if self.exp_dir else None

    def _load_retries(self) -> dict[str, int]:
        f = self._retries_file()
        if f is not None and f.is_file():
            try:
                return dict(json.loads(f.read_text()))
            except (OSError, ValueError):
                pass
        return {}

    def _save_retries(self) -> None:
        f = self._retries_file()
        if f is not None:
            f.write_text(json.dumps(self.retries))

    # --- hooks ------------------------------------------------------------------------
    def setup(self, **info) -> None:
        self._t0 = time.time() - self._elapsed0
        for tid, n in self._load_retries().items():
            self.retries[tid] = max(n, self.retries.get(tid, 0))

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self.running.add(trial.trial_id)
        self.status.pop(trial.trial_id, None)  # running again (resumed errored trial)
        self._render(trials)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._last[trial.trial_id] = result
        improved = False
        incumbent = ([{self.metric: self.best, "trial_id": self.best_trial}]
                     if self.best is not None else [])
        challenger = {**result, "trial_id": trial.trial_id}
        if select_best(incumbent + [challenger], self.metric, self.mode) is challenger:
            self.best, self.best_trial = float(result[self.metric]), trial.trial_id
            improved = True
        # a result changes the printed line only through the best (counts change at trial
        # ends): skip building the line per result unless the view can change
        if improved or (self.enabled and self._stream_is_tty()):
            self._render(trials)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        r = trial.last_result or self._last.get(trial.trial_id, {})
        self.status[trial.trial_id] = classify(r, self.max_epochs)
        self._render(trials, force=True)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        self.retries[trial.trial_id] = self.retries.get(trial.trial_id, 0) + 1
        self._save_retries()
        self._render(trials, force=True)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        self.running.discard(trial.trial_id)
        self.status[trial.trial_id] = "errored"
        self._render(trials, force=True)

    def on_experiment_end(self, trials, **info) -> None:
        self.running.clear()
        self._render(None, force=True)
        if self.enabled and self.stream.isatty():
            print(file=self.stream, flush=True)

    # --- view -------------------------------------------------------------------------
    def line(self, trials=None) -> str:
        counts: dict[str, int] = {}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        done = sum(counts.values())
        running = len(self.running)
        if trials is not None:
            # Ray calls on_trial_complete before it flips the trial's status
            running = sum(1 for t in trials
                          if t.status == "RUNNING" and t.trial_id not in self.status)
        total = f"/{self.total}" if self.total else ""
        labels = (("pruned", "pruned"), ("diverged", "diverged"), ("errored", "errored"),
                  ("duplicate", "dup"))
        extras = [f"{counts[k]} {lbl}" for k, lbl in labels if counts.get(k)]
        retries = sum(self.retries.values())
        if retries:
            extras.append(f"{retries} retries")
        head = f"[{self.name}] {done}{total} done"
        if extras:
            head += f" ({', '.join(extras)})"
        parts = [head, f"{running} running"]
        if self.best is not None:
            parts.append(f"best {self.metric}={self.best:.4g} ({self.best_trial})")
        parts.append(_fmt_elapsed(time.time() - self._t0))
        return " | ".join(parts)

    def _render(self, trials=None, force: bool = False) -> None:
        if not self.enabled:
            return
        tty = self._stream_is_tty()
        now = time.time()
        if tty and not force and now - self._last_print <= 0.5:
            return  # refresh at most twice a second
        line = self.line(trials)
        # a new line (non-TTY) only when counts or the best change, not for running churn
        body = " | ".join(p for p in line.split(" | ")[:-1] if not p.endswith(" running"))
        if tty:
            if force or now - self._last_print > 0.5:
                self.stream.write("\r\x1b[2K" + line)
                self.stream.flush()
                self._last_print = now
        elif body != self._last_line:
            self.stream.write(line + "\n")
            self.stream.flush()
        self._last_line = body


def classify(result: dict[str, Any] | None, max_epochs: int, error: bool = False) -> str:
    """completed | pruned | diverged | errored | duplicate, from a trial's last result."""
    if error:
        return "errored"
    result = result or {}
    if result.get("duplicate"):
        return "duplicate"
    if result.get("diverged"):
        return "diverged"
    reached = result.get("epoch", result.get("training_iteration"))
    if reached is None:
        return "errored"
    if reached < max_epochs:
        return "pruned"
    return "completed"


def _fmt_elapsed(s: float) -> str:
    s = int(s)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"
