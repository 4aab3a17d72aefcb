"""Experiment-level TensorBoard logging as a Ray Tune callback.

Layout under ``<experiment dir>/tensorboard``::

    events.*                 ONE HParams experiment config: every space parameter + the metrics,
                             and experiment scalars (best-so-far of the objective)
    <trial name>/events.*    per-trial scalars (every numeric metric, per epoch) + that trial's
                             HParams session start/end

Ray's own TensorBoard logger writes one HParams config per trial holding only that trial's
parameters, so TensorBoard drops the columns of other (conditional) parameters; this callback
writes a single config covering the whole space. Uses tensorboard's own writer (no TensorFlow).

Writes are buffered: nothing is flushed per result (the writers' background thread flushes every
few seconds); a trial's writer is flushed and closed when the trial completes or errors (and
reopened, as a new events file in the same folder, if the trial runs again), the experiment
writer is flushed at each trial end and closed at the experiment end.
"""
from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from ray.tune import Callback

from .selection import select_best

__all__ = ["DEFAULT_METRICS", "TensorBoardCallback"]

# Ray bookkeeping keys that are numeric but not metrics
_SKIP = {"done", "training_iteration", "timestamp", "pid", "time_this_iter_s",
         "iterations_since_restore", "time_since_restore", "should_checkpoint"}
DEFAULT_METRICS = ("val_acc", "val_loss", "train_loss", "epoch_time_s", "lr")


def _hparam_value(v: Any) -> Any:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, (int, float)):
        return float(v)
    try:
        import numpy as np

        if isinstance(v, np.generic):
            return _hparam_value(v.item())
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _domain_spec(p: Any) -> tuple:
    """Plain-data description of a parameter's domain (picklable; no space kept)."""
    if getattr(p, "is_discrete", False):
        vals = [_hparam_value(v) for v in p.values]
        types = {type(v) for v in vals}
        if len(types) == 1:
            return ("discrete", sorted(set(vals)))
        return ("discrete", sorted({str(v) for v in vals}))
    if hasattr(p, "low"):
        return ("real", float(p.low), float(p.high))
    return ("any",)


def _domain(spec: tuple):
    from tensorboard.plugins.hparams import summary_v2 as hp

    if spec[0] == "discrete":
        return hp.Discrete(spec[1])
    if spec[0] == "real":
        return hp.RealInterval(spec[1], spec[2])
    return None


_PRELOAD: threading.Thread | None = None


def _preload_writer_modules() -> None:
    """Import tensorboard's writer stack (~0.3 s: its gfile layer pulls in boto3/fsspec) on a
    background thread, so it overlaps Tune starting the first trial actors instead of
    delaying the experiment start."""
    global _PRELOAD
    if _PRELOAD is None:
        def _imports() -> None:
            try:
                from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: F401
                from tensorboard.plugins.hparams import summary_v2  # noqa: F401
                from tensorboard.summary.writer import event_file_writer  # noqa: F401
            except Exception:  # noqa: BLE001 - the foreground import reports it
                pass

        _PRELOAD = threading.Thread(target=_imports, name="archtune-tb-import", daemon=True)
        _PRELOAD.start()


class _Writer:
    """Minimal event-file writer (tensorboard's EventFileWriter, no TensorFlow)."""

    def __init__(self, logdir: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        logdir.mkdir(parents=True, exist_ok=True)
        self._w = EventFileWriter(str(logdir), flush_secs=5)

    def summary(self, summary, step: int = 0, wall_time: float | None = None) -> None:
        from tensorboard.compat.proto.event_pb2 import Event

        self._w.add_event(Event(wall_time=wall_time or time.time(), step=int(step),
                                summary=summary))

    def scalar(self, tag: str, value: float, step: int, wall_time: float | None = None) -> None:
        self.scalars([(tag, value)], step, wall_time)

    def scalars(self, items, step: int, wall_time: float | None = None) -> None:
        """Several scalars at one step as ONE event (one proto, one record per result)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        values = [Summary.Value(tag=tag, simple_value=float(v)) for tag, v in items]
        if values:
            self.summary(Summary(value=values), step, wall_time)

    def flush(self) -> None:
        self._w.flush()

    def close(self) -> None:
        self._w.close()


class TensorBoardCallback(Callback):
    """Per-trial scalars + one experiment-level HParams summary.

    Args:
        logdir: the experiment's ``tensorboard`` folder.
        space: the SearchSpace (its parameters become the HParams columns).
        metric, mode: the objective (best-so-far scalar ``best/<metric>``).
        metrics: metric tags listed in the HParams config (objective first).
        filesystem: with a ``logdir`` that is a URI (``s3://...``) or a path on this
            ``pyarrow.fs`` filesystem, the logs are written to a local folder and copied there
            when a trial ends and when the experiment ends.
    """

    def __init__(self, logdir: str | Path, space: Any, metric: str, mode: str,
                 metrics: Iterable[str] = DEFAULT_METRICS, filesystem: Any = None) -> None:
        from . import storage

        remote = storage.is_uri(logdir) or filesystem is not None
        self.upload_to = str(logdir) if remote else None
        self._fs = filesystem
        self.logdir = (Path(tempfile.mkdtemp(prefix="archtune_tb_")) if remote
                       else Path(logdir))
        self.params = {name: _domain_spec(p) for name, p in space.params.items()}
        self.metric = metric
        self.mode = mode
        self.metrics = [metric] + [m for m in metrics if m != metric]
        self._writers: dict[str, _Writer] = {}
        self._exp: _Writer | None = None
        self._started: dict[str, dict] = {}   # trial id -> the hparams its session shows
        self._ended: dict[str, int] = {}      # trial id -> session end status written
        self._config_written = False
        self._best: float | None = None
        self._n_results = 0
        self._elapsed0 = 0.0
        self._t0 = time.time()

    def __getstate__(self) -> dict:  # writers are process-local
        d = dict(self.__dict__)
        d["_writers"], d["_exp"] = {}, None
        return d

    def __setstate__(self, d: dict) -> None:
        self.__dict__.update(d)
        if d.get("upload_to") is not None:  # a fresh local staging folder in this process
            self.logdir = Path(tempfile.mkdtemp(prefix="archtune_tb_"))

    # --- Tune's experiment snapshot: a resumed experiment continues the same logs --------
    def get_state(self) -> dict:
        return {"started": dict(self._started), "ended": dict(self._ended),
                "config_written": self._config_written, "best": self._best,
                "n_results": self._n_results, "elapsed": time.time() - self._t0}

    def set_state(self, state: dict) -> None:
        self._started = dict(state.get("started", {}))
        self._ended = dict(state.get("ended", {}))
        self._config_written = bool(state.get("config_written"))
        self._best = state.get("best")
        self._n_results = int(state.get("n_results", 0))
        self._elapsed0 = float(state.get("elapsed", 0.0))

    # --- writers --------------------------------------------------------------------------
    def _exp_writer(self) -> _Writer:
        if self._exp is None:
            from tensorboard.plugins.hparams import summary_v2 as hp

            self._exp = _Writer(self.logdir)
            if self._config_written:  # before a resume
                return self._exp
            self._config_written = True
            hparams = []
            for name, spec in self.params.items():
                dom = _domain(spec)
                hparams.append(hp.HParam(name, dom) if dom is not None else hp.HParam(name))
            config = hp.hparams_config_pb(
                hparams=hparams, metrics=[hp.Metric(m) for m in self.metrics])
            self._exp.summary(config)
            self._exp.flush()
        return self._exp

    def _trial_writer(self, trial) -> _Writer:
        """The trial's writer, opened lazily (again, after the trial's end closed it)."""
        key = trial.trial_id
        if key not in self._writers:
            self._writers[key] = _Writer(self.logdir / _trial_name(trial))
        return self._writers[key]

    def _close_trial_writer(self, trial) -> None:
        w = self._writers.pop(trial.trial_id, None)
        if w is not None:
            w.close()  # flushes
            self._upload(_trial_name(trial))

    def _upload(self, sub: str = "") -> None:
        """Copy the local logs (of one trial folder, or all) to the remote ``logdir``."""
        if self.upload_to is None:
            return
        import pyarrow.fs as pafs

        from . import storage

        dest = storage.resolve(self.upload_to, self._fs)
        src = self.logdir / sub if sub else self.logdir
        if sub:
            dest = dest / sub
        if src.exists():
            pafs.copy_files(str(src), dest.path, source_filesystem=pafs.LocalFileSystem(),
                            destination_filesystem=dest.fs)

    # --- Callback hooks -------------------------------------------------------------------
    def setup(self, **info) -> None:
        # the experiment writer (and its HParams config) opens with the first trial: by then
        # the background import has overlapped the start of the trial actors
        _preload_writer_modules()
        self._t0 = time.time() - self._elapsed0

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        # running (again): a resumed errored trial, or a PBT trial with new hyperparameters.
        # TensorBoard shows the FIRST session start/end of a run: drop the stale ones
        stale = set()
        if self._ended.pop(trial.trial_id, None) is not None:
            stale.add(_END_TAG)
        old = self._started.get(trial.trial_id)
        if old is not None and old != self._hparams(trial):
            stale.add(_START_TAG)
            del self._started[trial.trial_id]
        if stale:
            self._close_trial_writer(trial)
            _drop_events(self.logdir / _trial_name(trial), stale)
        self._start_session(trial)

    def _hparams(self, trial) -> dict:
        from spaces.compile.tune import strip_inactive

        # inactive conditional parameters stay empty in the HParams table
        return {k: _hparam_value(v) for k, v in strip_inactive(trial.config or {}).items()
                if k in self.params}

    def _start_session(self, trial) -> None:
        if trial.trial_id in self._started:
            return
        from tensorboard.plugins.hparams import summary_v2 as hp

        self._exp_writer()
        hparams = self._hparams(trial)
        self._started[trial.trial_id] = hparams
        self._trial_writer(trial).summary(hp.hparams_pb(hparams, trial_id=trial.trial_id))

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        self._start_session(trial)
        step = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        self._trial_writer(trial).scalars(
            [(k, v) for k, v in result.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
             and k not in _SKIP and not k.startswith("config")],
            step)
        incumbent = [{self.metric: self._best}] if self._best is not None else []
        challenger = {**result}
        winner = select_best(incumbent + [challenger], self.metric, self.mode)
        if winner is not None and (winner is challenger or not challenger.get("duplicate")):
            self._best = float(winner[self.metric])
            self._n_results += 1
            exp = self._exp_writer()
            exp.scalar(f"best/{self.metric}", self._best, self._n_results)
            exp.scalar(f"best/{self.metric}_vs_time_s", self._best,
                       int(time.time() - self._t0))

    def _end(self, trial, status: int) -> None:
        if trial.trial_id in self._ended:
            return
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2

        self._start_session(trial)
        self._ended[trial.trial_id] = int(status)
        info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
        md = metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(
            session_end_info=info))
        summary = Summary(value=[Summary.Value(tag=metadata.SESSION_END_INFO_TAG, metadata=md,
                                               tensor=metadata.NULL_TENSOR)])
        self._trial_writer(trial).summary(summary)
        self._close_trial_writer(trial)
        if self._exp is not None:
            self._exp.flush()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        from tensorboard.plugins.hparams import api_pb2

        self._end(trial, api_pb2.STATUS_SUCCESS)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        from tensorboard.plugins.hparams import api_pb2

        self._end(trial, api_pb2.STATUS_FAILURE)

    def on_experiment_end(self, trials, **info) -> None:
        self._exp_writer()  # the HParams config exists even if no trial ever started
        for w in self._writers.values():  # trials still open (stopped, interrupted)
            w.close()
        self._writers.clear()
        if self._exp is not None:
            self._exp.close()
            self._exp = None
        self._upload()


_START_TAG = "_hparams_/session_start_info"
_END_TAG = "_hparams_/session_end_info"


def _drop_events(run_dir: Path, tags: set[str]) -> None:
    """Rewrite the event files of ``run_dir`` as one file without the summaries tagged
    ``tags`` (TensorBoard keeps the first HParams session start/end of a run it reads)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    files = sorted(run_dir.glob("events.out.tfevents.*"))
    if not files:
        return
    keep = [ev for f in files for ev in LegacyEventFileLoader(str(f)).Load()
            if not ev.HasField("file_version")
            and not any(v.tag in tags for v in ev.summary.value)]
    with tempfile.TemporaryDirectory(dir=run_dir) as tmp:
        w = EventFileWriter(tmp)
        for ev in keep:
            w.add_event(ev)
        w.close()
        for f in files:
            f.unlink()
        # under the first file's name: TensorBoard reads a run's files in name order, and
        # the events written after this rewrite must come after the rewritten ones
        next(Path(tmp).iterdir()).rename(files[0])


def _trial_name(trial) -> str:
    return str(getattr(trial, "trial_id", trial))
