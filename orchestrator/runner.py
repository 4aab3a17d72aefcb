"""run / resume: an Experiment -> a Ray Tune Tuner -> :class:`Results`.

    from orchestrator import Experiment, run
    res = run(Experiment.from_yaml("examples/quickstart.yaml"))
    res.best_config, res.best_metric, res.dataframe

The experiment folder (``<storage>/<name>``) holds Ray's state plus ``experiment.yaml`` (so
``resume`` can rebuild the trainable), ``results.csv``, ``best.json`` and ``tensorboard/``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Ray's default CSV/JSON/TensorBoard loggers cost per-trial time and write misleading
# per-trial HParams; archtune writes its own TensorBoard summary instead.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

import pandas as pd  # noqa: E402

from spaces.errors import ArchtuneError  # noqa: E402
from orchestrator.errors import SpecError  # noqa: E402

from . import storage  # noqa: E402
from .progress import classify  # noqa: E402
from .selection import select_best  # noqa: E402
from .spec import Experiment, load_experiment  # noqa: E402
from .trials import trial_dirname_for  # noqa: E402

__all__ = ["ExperimentInterrupted", "Results", "build_tuner", "is_complete", "resume", "run"]

log = logging.getLogger("archtune")
SPEC_FILE = "experiment.yaml"


@dataclass
class Results:
    """What an experiment produced.

    Attributes:
        best_config: the best trial's configuration (space parameters only).
        best_metric: its objective value (last reported), ``None`` if no trial reported.
        dataframe: one row per trial: ``trial_id``, ``status`` (completed | pruned | diverged |
            errored | duplicate), ``retries``, ``epochs``, ``config/<param>`` columns, metrics.
        path: the experiment folder.
    """

    best_config: dict[str, Any]
    best_metric: float | None
    dataframe: pd.DataFrame
    path: str
    metric: str = "val_acc"
    mode: str = "max"
    best_trial: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        n = len(self.dataframe)
        return (f"Results(path={self.path!r}, trials={n}, best_{self.metric}={self.best_metric}, "
                f"best_config={self.best_config})")

    @classmethod
    def load(cls, path: "str | Path | storage.Location", filesystem: Any = None) -> "Results":
        """Read ``results.csv`` and ``best.json`` written by :func:`run` from a local folder or
        a URI (``s3://...``). An interrupted experiment has a table but no ``best.json``."""
        p = storage.resolve(path, filesystem)
        if not (p / "results.csv").is_file():
            raise ArchtuneError(f"{p}: no results.csv (is this an archtune experiment folder "
                                f"whose run finished or was resumed?)")
        import io

        # only empty cells are missing: "nan", "None" or "NA" may be chosen values
        df = pd.read_csv(io.BytesIO((p / "results.csv").read_bytes()),
                         keep_default_na=False, na_values=[""])
        best = json.loads((p / BEST_FILE).read_text()) if (p / BEST_FILE).is_file() else {}
        return cls(best_config=best.get("best_config", {}), best_metric=best.get("best_metric"),
                   dataframe=df, path=str(p), metric=best.get("metric", "val_acc"),
                   mode=best.get("mode", "max"), best_trial=best.get("best_trial"))

    def save(self, *, complete: bool = True, filesystem: Any = None) -> None:
        """Write ``results.csv``, and ``best.json`` only when the experiment is ``complete``
        (its presence marks a finished experiment, see :func:`is_complete`)."""
        p = storage.resolve(self.path, filesystem)
        (p / "results.csv").write_text(self.dataframe.to_csv(index=False))
        if complete:
            (p / BEST_FILE).write_text(json.dumps({
                "metric": self.metric, "mode": self.mode, "best_metric": self.best_metric,
                "best_trial": self.best_trial, "best_config": self.best_config,
            }, indent=2, default=str))


BEST_FILE = "best.json"


def is_complete(path: "str | Path | storage.Location", filesystem: Any = None) -> bool:
    """True when the experiment at ``path`` ran to its end (``best.json`` is written then and
    only then; an interrupted experiment has at most a ``results.csv``)."""
    return (storage.resolve(path, filesystem) / BEST_FILE).is_file()


class ExperimentInterrupted(ArchtuneError):
    """SIGINT or SIGTERM stopped the experiment; Ray saved its state for ``archtune resume``.

    Attributes: ``results`` (the table so far, unfinished trials ``interrupted``), ``signum``,
    ``exit_code`` (128 + signal number: 130 for SIGINT, 143 for SIGTERM), ``path``.
    """

    def __init__(self, results: "Results", signum: int, finished: int) -> None:
        self.results, self.signum, self.path = results, int(signum), results.path
        self.exit_code = 128 + self.signum
        total = len(results.dataframe)
        super().__init__(f"interrupted: {finished} of {total} trials finished; continue "
                         f"with: archtune resume {results.path}")


class _StopSignals:
    """While the Tuner runs, SIGINT and SIGTERM stop it gracefully: they call Tune's own stop
    handler (registered for SIGUSR1; Tune then saves its state and returns from ``fit``). A
    second signal raises KeyboardInterrupt at once. Only in the main thread (where Python
    delivers signals); elsewhere it does nothing."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}
        self._env: str | None = None

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self
        # Tune would otherwise replace the SIGINT handler with one that archtune cannot see
        self._env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.getsignal(s)
            signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if not callable(tune_stop):  # Tune is not running yet
            raise KeyboardInterrupt
        print(f"\n{signal.Signals(signum).name}: stopping after Ray saves the experiment "
              f"state (send it again to stop at once)", file=sys.stderr, flush=True)
        tune_stop(signal.SIGUSR1, frame)

    def __exit__(self, *exc: Any) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        if self._old:
            if self._env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._env


# ---------------------------------------------------------------------------------- Ray
def _ensure_ray(address: str | None, verbose: bool) -> bool:
    """Start or connect to Ray; True if this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=verbose, configure_logging=verbose)
        return True
    from . import local_ray

    # a local Ray whose archtune driver was SIGKILLed still holds CPUs and memory
    local_ray.stop_leftovers()
    ctx = ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                   _node_ip_address="127.0.0.1", log_to_driver=verbose,
                   configure_logging=verbose)
    session = getattr(ctx, "address_info", {}).get("session_dir")
    _LOCAL_RAY_RECORDS.append(local_ray.register(session) if session else None)
    return True


_LOCAL_RAY_RECORDS: list = []


def _shutdown_ray() -> None:
    """Shut down the Ray this process started (and drop its local-Ray record)."""
    import ray

    from . import local_ray

    ray.shutdown()
    while _LOCAL_RAY_RECORDS:
        local_ray.forget(_LOCAL_RAY_RECORDS.pop())


def _max_concurrent(exp: Experiment) -> int:
    """``max_concurrent``, else the trials the cluster's resources hold now, plus one (the
    starting value of :class:`~orchestrator.concurrency.GrowingLimiter`)."""
    if exp.max_concurrent:
        return exp.max_concurrent
    from .concurrency import capacity

    return capacity(exp.resources.cpu, exp.resources.gpu) + 1


def _trainable(exp: Experiment, space: Any):
    from ray import tune

    from .adapter import make_trainable

    fn = make_trainable(trainer=exp.resolve_trainer(), space=space, data=exp.data,
                        fixed=exp.fixed, seed=exp.seed, max_epochs=exp.max_epochs,
                        num_cpus=exp.resources.cpu, snap=exp.scheduler.type == "pb2",
                        exp_dir=exp.experiment_dir(), metric=exp.metric)
    resources = {"cpu": exp.resources.cpu}
    if exp.resources.gpu:
        resources["gpu"] = exp.resources.gpu
    return tune.with_resources(fn, resources)


def _callbacks(exp: Experiment, space: Any, exp_dir: str, total: int | None,
               filesystem: Any = None, scheduler: Any = None):
    from .checkpoints import CheckpointFallback
    from .progress import ProgressCallback
    from .scheduler_state import SchedulerState
    from .tensorboard import TensorBoardCallback

    tb_dir = (f"{exp_dir.rstrip('/')}/tensorboard" if storage.is_uri(exp_dir) or filesystem
              else Path(exp_dir) / "tensorboard")
    # the scheduler's state is saved with each snapshot (Ray's snapshot leaves it out)
    cbs = [CheckpointFallback(), SchedulerState(scheduler),
           TensorBoardCallback(tb_dir, space, exp.metric, exp.mode, filesystem=filesystem)]
    cbs.append(ProgressCallback(exp.name, exp.metric, exp.mode, exp.max_epochs,
                                exp_dir=exp_dir, total=total, enabled=True,
                                filesystem=filesystem))
    return cbs


def trial_dirname(trial) -> str:
    """Short, stable trial folder names (Ray's default embeds the whole config)."""
    return trial_dirname_for(trial.trial_id)


def _quiet_ray_logs(verbose: bool) -> None:
    if verbose:
        return
    # Ray's new output engine prints a config table even when silent; the legacy one obeys
    # verbose=0. archtune's ProgressCallback is the progress view.
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    except ImportError:  # pragma: no cover
        pass
    # with Ray's CSV/JSON loggers disabled, ResultGrid warns that it cannot read
    # per-trial metric files; archtune's table comes from the trials' last results
    for name in ("ray.tune.analysis.experiment_analysis", "ray.tune.result_grid",
                 "ray.tune.tune", "ray.tune.execution.tune_controller",
                 "ray.tune.execution.experiment_state"):
        logging.getLogger(name).setLevel(logging.ERROR)


def build_tuner(exp: Experiment, *, verbose: bool = False, storage_filesystem: Any = None):
    """The configured ``ray.tune.Tuner`` (Ray must be initialised). Returns (tuner, space)."""
    from ray import tune

    from .adapter import stop_diverged
    from .search import make_scheduler, make_searcher, perturbation_interval

    _quiet_ray_logs(verbose)
    space = exp.load_space()
    pbt = exp.scheduler.type in ("pbt", "pb2")
    searcher = make_searcher(exp, space, max_concurrent=_max_concurrent(exp) if pbt else 0)
    num_samples = exp.num_samples
    if exp.searcher.type == "grid" and not pbt:
        num_samples = len(searcher.configs)
    if not pbt and not exp.max_concurrent:
        # Tune runs one trial at a time under a custom searcher that has no limit; this one
        # grows with the cluster (the autoscaler adds nodes for the trial kept waiting)
        from .concurrency import growing_limiter

        searcher = growing_limiter(searcher, exp.resources.cpu, exp.resources.gpu)
    scheduler = make_scheduler(exp, space)
    param_space: dict[str, Any] = {}
    if pbt:
        from spaces.compile.tune import to_tune

        param_space = to_tune(space)
    # Actor reuse saves per-trial start-up time, but in Ray 2.60 a trial restored from a
    # checkpoint onto a reused function actor (PBT exploit, HyperBand pause/resume) keeps the
    # previous trial's context (trial dir, id, storage): reuse only where trials never resume.
    reuse = exp.scheduler.type in ("fifo", "asha", "median")
    checkpoint_config = tune.CheckpointConfig(num_to_keep=3 if pbt else 2)
    exp_dir = exp.experiment_dir()
    run_config = tune.RunConfig(
        name=exp.name,
        storage_path=(exp.storage_root() if storage_filesystem is None
                      else storage.resolve(exp.storage_root(), storage_filesystem).path),
        storage_filesystem=storage_filesystem,
        failure_config=tune.FailureConfig(max_failures=exp.max_failures),
        checkpoint_config=checkpoint_config, stop=stop_diverged,
        callbacks=_callbacks(exp, space, exp_dir, num_samples, storage_filesystem,
                             scheduler),
        verbose=2 if verbose else 0,
        log_to_file=not verbose,
    )
    tune_config = tune.TuneConfig(
        metric=exp.metric, mode=exp.mode, search_alg=searcher, scheduler=scheduler,
        num_samples=num_samples,
        max_concurrent_trials=exp.max_concurrent if exp.max_concurrent and not pbt else None,
        time_budget_s=exp.time_budget_s, reuse_actors=reuse,
        trial_dirname_creator=trial_dirname,
    )
    if pbt:
        import warnings

        # actor reuse is off on purpose for PBT (see `reuse` above)
        warnings.filterwarnings("ignore", message="Consider boosting PBT performance")
        log.info("PBT perturbation interval %s epochs", perturbation_interval(exp))
    tuner = tune.Tuner(_trainable(exp, space), param_space=param_space,
                       tune_config=tune_config, run_config=run_config)
    return tuner, space


def run(exp: "Experiment | str | Path | dict", address: str | None = None, *,
        verbose: bool = False, storage_filesystem: Any = None) -> Results:
    """Validate ``exp`` (before Ray starts), run it on a local Ray (or the cluster at
    ``address``) and return :class:`Results` (also written to ``results.csv``/``best.json``).

    ``storage_filesystem`` (a ``pyarrow.fs.FileSystem``, e.g. S3 with an ``endpoint_override``
    for MinIO) holds the experiment when ``exp.storage`` is a bucket path on it; by default
    the experiment file's ``storage_filesystem`` options build it. Raises
    :class:`ExperimentInterrupted` after SIGINT/SIGTERM (the state is saved for resume)."""
    exp = load_experiment(exp)
    exp.validate()
    if storage_filesystem is None:
        storage_filesystem = exp.filesystem()  # the experiment file's storage_filesystem
    exp_dir = storage.resolve(exp.experiment_dir(), storage_filesystem)
    if (exp_dir / "tuner.pkl").exists():
        raise SpecError(f"{exp.source or 'experiment'}: key 'name': experiment folder "
                        f"{exp_dir} already holds a run; continue it with "
                        f"`archtune resume {exp_dir}` or choose another name/storage")
    # absolute storage and space paths: the saved spec stands alone for `resume`
    (exp_dir / SPEC_FILE).write_text(exp.replace(storage=exp.storage_root()).to_yaml())
    started = _ensure_ray(address, verbose)
    try:
        tuner, space = build_tuner(exp, verbose=verbose, storage_filesystem=storage_filesystem)
        return _fit_and_collect(tuner, exp, space, exp_dir)
    finally:
        if started:
            _shutdown_ray()


def resume(path: "str | Path", address: str | None = None, *, verbose: bool = False,
           storage_filesystem: Any = None) -> Results:
    """Continue an interrupted experiment (a local folder or a URI): finished trials are kept,
    in-flight ones continue from their last checkpoint, errored ones are resumed (not
    restarted).

    Security: this unpickles Ray's saved state (``tuner.pkl``, searcher and trial state);
    never resume an experiment folder that came from a source you do not trust."""
    from ray import tune

    loc = storage.resolve(path, storage_filesystem)
    if not (loc / SPEC_FILE).is_file():
        raise SpecError(f"{loc}: not an archtune experiment folder (no {SPEC_FILE})")
    import yaml

    exp = Experiment.from_dict(yaml.safe_load((loc / SPEC_FILE).read_text()))
    # the folder may have moved: storage follows the folder
    parent, _, name = loc.uri.rstrip("/").rpartition("/") if storage.is_uri(loc.uri) else (
        str(Path(loc.uri).parent), "", Path(loc.uri).name)
    exp = exp.replace(storage=parent, name=name)
    exp.validate()
    if storage_filesystem is None and exp.filesystem() is not None:
        storage_filesystem = exp.filesystem()
        loc = storage.resolve(loc.uri, storage_filesystem)
    if storage_filesystem is not None and storage.is_uri(loc.uri):
        storage.use_filesystem(loc.uri, storage_filesystem)
    started = _ensure_ray(address, verbose)
    _quiet_ray_logs(verbose)
    try:
        space = exp.load_space()
        restore_path = loc.uri if storage_filesystem is None else loc.path
        if not tune.Tuner.can_restore(restore_path, storage_filesystem=storage_filesystem):
            raise SpecError(f"{loc}: no Ray Tune experiment state to resume from")
        tuner = tune.Tuner.restore(restore_path, trainable=_trainable(exp, space),
                                   resume_errored=True, restart_errored=False,
                                   storage_filesystem=storage_filesystem)
        return _fit_and_collect(tuner, exp, space, loc)
    finally:
        if started:
            _shutdown_ray()


def _fit_and_collect(tuner, exp: Experiment, space: Any, exp_dir: storage.Location) -> Results:
    """Run the tuner with graceful stop signals; the results table (and, when the experiment
    ran to its end, ``best.json``) written; :class:`ExperimentInterrupted` after a signal."""
    with _StopSignals() as signals:
        grid = _fit(tuner, str(exp_dir))
    res, finished = _results(exp, grid, exp_dir, interrupted=signals.signum is not None)
    if signals.signum is not None:
        raise ExperimentInterrupted(res, signals.signum, finished)
    return res


def _fit(tuner, exp_dir: str):
    from ray.tune import TuneError

    try:
        return tuner.fit()
    except TuneError as e:
        raise ArchtuneError(f"experiment failed: {e}\nContinue it with: archtune resume "
                            f"{exp_dir}") from e
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: archtune resume {exp_dir}", file=sys.stderr)
        raise


# ---------------------------------------------------------------------------------- results
_RAY_BOOKKEEPING = ("config", "trial_id", "date", "hostname", "node_ip", "pid", "done",
                    "checkpoint_dir_name", "should_checkpoint", "experiment_tag")
_FINISHED = ("TERMINATED", "ERROR")


def _trial_row(exp: Experiment, trial: Any, error: Any, retries: dict[str, int],
               interrupted: bool) -> dict[str, Any]:
    """One results-table row for a Tune ``Trial`` (``error``: its exception or ``None``)."""
    m = dict(trial.last_result or {})
    tid = trial.trial_id
    errored = error is not None or trial.status == "ERROR"
    if interrupted and trial.status not in _FINISHED:
        status = "interrupted"
    elif errored:
        status = "errored"
    else:
        status = classify(m, exp.max_epochs)
    n_fail = int(getattr(trial, "num_failures", 0) or 0)
    row: dict[str, Any] = {
        "trial_id": tid,
        "status": status,
        # restarts from a checkpoint (the final failure of an errored trial is no retry)
        "retries": int(retries.get(tid, min(n_fail, max(exp.max_failures, 0)))),
        "epochs": m.get("epoch", m.get("training_iteration")),
    }
    for k, v in _strip(_public_config(trial.config)).items():
        plain = isinstance(v, (int, float, str, bool)) or v is None
        row[f"config/{k}"] = v if plain else str(v)
    for k, v in m.items():
        # Ray's bookkeeping and its flattened copy of the raw config are no metrics
        if k in _RAY_BOOKKEEPING or k.startswith("config/"):
            continue
        if isinstance(v, (int, float, str, bool)):
            row[k] = v
    row["time_total_s"] = m.get("time_total_s")
    row["error"] = error_summary(error)
    row["path"] = getattr(trial, "path", None)
    return row


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def error_summary(error: Any) -> str:
    """The line that says what went wrong (at most 200 characters): the last line of the
    error's text, which for a Ray task error is the trainer's own exception ("MemoryError:
    ..."), not Ray's wrapper line. ``""`` for no error."""
    if error is None:
        return ""
    lines = [ln.strip() for ln in _ANSI.sub("", str(error)).splitlines() if ln.strip()]
    return lines[-1][:200] if lines else type(error).__name__


def _trials(grid, exp_dir: storage.Location) -> list:
    """The experiment's trials as Tune saved them at the end of ``fit``."""
    from ray.tune import ExperimentAnalysis

    ea = ExperimentAnalysis(exp_dir.path, storage_filesystem=exp_dir.fs)
    return list(ea.trials)


def _results(exp: Experiment, grid, exp_dir: storage.Location, *,
             interrupted: bool = False) -> tuple[Results, int]:
    """The results table (saved; ``best.json`` too unless ``interrupted``) and the number of
    finished trials."""
    retries: dict[str, int] = {}
    if (exp_dir / "retries.json").is_file():
        retries = json.loads((exp_dir / "retries.json").read_text())
    errors = {Path(r.path or "").name: r.error for r in grid}
    trials = _trials(grid, exp_dir)
    rows = [_trial_row(exp, t, errors.get(trial_dirname(t)), retries, interrupted)
            for t in trials]
    rows.sort(key=lambda r: r["trial_id"])
    best = select_best(rows, exp.metric, exp.mode)
    best_cfg: dict[str, Any] = {}
    if best is not None:
        cfg = next(t.config for t in trials if t.trial_id == best["trial_id"])
        best_cfg = {**_strip(_public_config(cfg)), **dict(exp.fixed)}
    res = Results(best_config=best_cfg,
                  best_metric=float(best[exp.metric]) if best is not None else None,
                  dataframe=pd.DataFrame(rows), path=str(exp_dir), metric=exp.metric,
                  mode=exp.mode, best_trial=str(best["trial_id"]) if best is not None else None)
    res.save(complete=not interrupted, filesystem=exp_dir.fs)
    finished = sum(1 for t in trials if t.status in _FINISHED)
    return res, finished


def _public_config(cfg: dict | None) -> dict:
    return {k: v for k, v in (cfg or {}).items() if not k.startswith("_archtune")}


def _strip(cfg: dict) -> dict:
    from spaces.compile.tune import strip_inactive

    return strip_inactive(dict(cfg))
