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
import sys
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

from .progress import classify  # noqa: E402
from .spec import Experiment, load_experiment  # noqa: E402

__all__ = ["run", "resume", "Results", "build_tuner"]

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
    def load(cls, path: str | Path) -> "Results":
        """Read ``results.csv`` and ``best.json`` written by :func:`run`."""
        p = Path(path)
        if not (p / "results.csv").is_file():
            raise ArchtuneError(f"{p}: no results.csv (is this an archtune experiment folder "
                                f"whose run finished or was resumed?)")
        df = pd.read_csv(p / "results.csv")
        best = json.loads((p / "best.json").read_text()) if (p / "best.json").is_file() else {}
        return cls(best_config=best.get("best_config", {}), best_metric=best.get("best_metric"),
                   dataframe=df, path=str(p), metric=best.get("metric", "val_acc"),
                   mode=best.get("mode", "max"), best_trial=best.get("best_trial"))

    def save(self) -> None:
        p = Path(self.path)
        p.mkdir(parents=True, exist_ok=True)
        self.dataframe.to_csv(p / "results.csv", index=False)
        (p / "best.json").write_text(json.dumps({
            "metric": self.metric, "mode": self.mode, "best_metric": self.best_metric,
            "best_trial": self.best_trial, "best_config": self.best_config,
        }, indent=2, default=str))


# ---------------------------------------------------------------------------------- Ray
def _ensure_ray(address: str | None, verbose: bool) -> bool:
    """Start or connect to Ray; True if this call started it (and must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=verbose, configure_logging=verbose)
    else:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False,
                 _node_ip_address="127.0.0.1", log_to_driver=verbose,
                 configure_logging=verbose)
    return True


def _max_concurrent(exp: Experiment) -> int:
    if exp.max_concurrent:
        return exp.max_concurrent
    import ray

    res = ray.cluster_resources()
    n = int(res.get("CPU", 1) // exp.resources.cpu)
    if exp.resources.gpu > 0:
        n = min(n, int(res.get("GPU", 0) // exp.resources.gpu))
    # one suggestion beyond the free slots: a trial is already waiting when another ends, so
    # its (reused) actor starts it at once instead of after the next searcher round-trip;
    # resources still cap the trials that actually run at ``n``
    return max(1, n) + 1


def _trainable(exp: Experiment, space: Any):
    from ray import tune

    from .adapter import make_trainable

    fn = make_trainable(trainer=exp.resolve_trainer(), space=space, data=exp.data,
                        fixed=exp.fixed, seed=exp.seed, max_epochs=exp.max_epochs,
                        num_cpus=exp.resources.cpu, snap=exp.scheduler.type == "pb2",
                        exp_dir=exp.experiment_dir())
    resources = {"cpu": exp.resources.cpu}
    if exp.resources.gpu:
        resources["gpu"] = exp.resources.gpu
    return tune.with_resources(fn, resources)


def _callbacks(exp: Experiment, space: Any, exp_dir: str, verbose: bool, total: int | None):
    from .progress import ProgressCallback
    from .tensorboard import TensorBoardCallback

    cbs = [TensorBoardCallback(Path(exp_dir) / "tensorboard", space, exp.metric, exp.mode)]
    cbs.append(ProgressCallback(exp.name, exp.metric, exp.mode, exp.max_epochs,
                                exp_dir=exp_dir, total=total, enabled=True))
    return cbs


def trial_dirname_for(trial_id: str) -> str:
    return f"trial_{trial_id}"


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


def build_tuner(exp: Experiment, *, verbose: bool = False):
    """The configured ``ray.tune.Tuner`` (Ray must be initialised). Returns (tuner, space)."""
    from ray import tune

    from .search import make_scheduler, make_searcher, perturbation_interval

    _quiet_ray_logs(verbose)
    space = exp.load_space()
    searcher = make_searcher(exp, space)
    scheduler = make_scheduler(exp, space)
    num_samples = exp.num_samples
    if exp.searcher.type == "grid" and exp.scheduler.type not in ("pbt", "pb2"):
        num_samples = len(searcher.configs)
    param_space: dict[str, Any] = {}
    if exp.scheduler.type in ("pbt", "pb2"):
        from spaces.compile.tune import to_tune

        param_space = to_tune(space)
    pbt = exp.scheduler.type in ("pbt", "pb2")
    # Actor reuse saves per-trial start-up time, but in Ray 2.60 a trial restored from a
    # checkpoint onto a reused function actor (PBT exploit, HyperBand pause/resume) keeps the
    # previous trial's context (trial dir, id, storage): reuse only where trials never resume.
    reuse = exp.scheduler.type in ("fifo", "asha", "median")
    checkpoint_config = tune.CheckpointConfig(num_to_keep=3 if pbt else 2)
    exp_dir = exp.experiment_dir()
    run_config = tune.RunConfig(
        name=exp.name,
        storage_path=exp.storage_root(),
        failure_config=tune.FailureConfig(max_failures=exp.max_failures),
        checkpoint_config=checkpoint_config,
        callbacks=_callbacks(exp, space, exp_dir, verbose, num_samples),
        verbose=2 if verbose else 0,
        log_to_file=not verbose,
    )
    tune_config = tune.TuneConfig(
        metric=exp.metric, mode=exp.mode, search_alg=searcher, scheduler=scheduler,
        num_samples=num_samples, max_concurrent_trials=_max_concurrent(exp),
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
        verbose: bool = False) -> Results:
    """Validate ``exp`` (before Ray starts), run it on a local Ray (or the cluster at
    ``address``) and return :class:`Results` (also written to ``results.csv``/``best.json``)."""
    exp = load_experiment(exp)
    exp.validate()
    exp_dir = Path(exp.experiment_dir()) if "://" not in exp.storage else None
    if exp_dir is not None:
        if (exp_dir / "tuner.pkl").exists():
            raise SpecError(f"{exp.source or 'experiment'}: key 'name': experiment folder "
                            f"{exp_dir} already holds a run; continue it with "
                            f"`archtune resume {exp_dir}` or choose another name/storage")
        exp_dir.mkdir(parents=True, exist_ok=True)
        # absolute storage and space paths: the saved spec stands alone for `resume`
        exp.replace(storage=exp.storage_root()).to_yaml(exp_dir / SPEC_FILE)
    started = _ensure_ray(address, verbose)
    try:
        tuner, space = build_tuner(exp, verbose=verbose)
        grid = _fit(tuner, exp.experiment_dir())
        return _results(exp, space, grid)
    finally:
        if started:
            import ray

            ray.shutdown()


def resume(path: str | Path, address: str | None = None, *, verbose: bool = False) -> Results:
    """Continue an interrupted experiment: finished trials are kept, in-flight ones continue
    from their last checkpoint, errored ones are resumed (not restarted)."""
    from ray import tune

    path = Path(path).expanduser().resolve()
    spec_file = path / SPEC_FILE
    if not spec_file.is_file():
        raise SpecError(f"{path}: not an archtune experiment folder (no {SPEC_FILE})")
    exp = Experiment.from_yaml(spec_file)
    # the folder may have moved: storage follows the folder
    exp = exp.replace(storage=str(path.parent), name=path.name)
    exp.validate()
    started = _ensure_ray(address, verbose)
    _quiet_ray_logs(verbose)
    try:
        space = exp.load_space()
        if not tune.Tuner.can_restore(str(path)):
            raise SpecError(f"{path}: no Ray Tune experiment state to resume from")
        tuner = tune.Tuner.restore(str(path), trainable=_trainable(exp, space),
                                   resume_errored=True, restart_errored=False)
        grid = _fit(tuner, str(path))
        return _results(exp, space, grid)
    finally:
        if started:
            import ray

            ray.shutdown()


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
def _results(exp: Experiment, space: Any, grid) -> Results:
    exp_dir = Path(grid.experiment_path) if "://" not in grid.experiment_path else None
    path = str(exp_dir) if exp_dir is not None else grid.experiment_path
    retries: dict[str, int] = {}
    if exp_dir is not None and (exp_dir / "retries.json").is_file():
        retries = json.loads((exp_dir / "retries.json").read_text())
    trials = {}
    try:
        trials = {t.trial_id: t for t in grid._experiment_analysis.trials}
    except AttributeError:  # pragma: no cover - private API moved
        pass
    rows = []
    configs: dict[str, dict] = {}
    for r in grid:
        m = dict(r.metrics or {})
        base = Path(r.path or "").name
        # the folder names the trial (a PBT clone's last result may carry the donor's id)
        tid = base[len("trial_"):] if base.startswith("trial_") else str(m.get("trial_id"))
        t = trials.get(tid)
        n_fail = getattr(t, "num_failures", 0) if t is not None else 0
        errored = r.error is not None
        row: dict[str, Any] = {
            "trial_id": tid,
            "status": classify(m, exp.max_epochs, error=errored and not m),
            # restarts from a checkpoint (the final failure of an errored trial is no retry)
            "retries": int(retries.get(tid, min(int(n_fail or 0), max(exp.max_failures, 0)))),
        }
        if errored:
            row["status"] = "errored"
        row["epochs"] = m.get("epoch", m.get("training_iteration"))
        # inactive (conditional) parameters are absent, never the sampling sentinel
        cfg = _strip({k: v for k, v in (r.config or {}).items() if not k.startswith("_archtune")})
        configs[tid] = cfg
        for k, v in cfg.items():
            plain = isinstance(v, (int, float, str, bool)) or v is None
            row[f"config/{k}"] = v if plain else str(v)
        for k, v in m.items():
            if k in ("config", "trial_id", "date", "hostname", "node_ip", "pid", "done",
                     "checkpoint_dir_name", "should_checkpoint", "experiment_tag"):
                continue
            if k.startswith("config/"):  # Ray's flattened copy of the raw config
                continue
            if isinstance(v, (int, float, str, bool)):
                row[k] = v
        row["time_total_s"] = m.get("time_total_s")
        row["error"] = str(r.error).splitlines()[0][:200] if errored else ""
        row["path"] = r.path
        rows.append(row)
    df = pd.DataFrame(rows)
    if not df.empty:
        df = df.sort_values("trial_id").reset_index(drop=True)
    best_cfg: dict[str, Any] = {}
    best_metric = None
    best_trial = None
    if not df.empty and exp.metric in df.columns:
        ok = df[df["status"].isin(["completed", "pruned", "duplicate"])]
        ok = ok[pd.to_numeric(ok[exp.metric], errors="coerce").notna()]
        if not ok.empty:
            vals = pd.to_numeric(ok[exp.metric])
            idx = vals.idxmax() if exp.mode == "max" else vals.idxmin()
            best_metric = float(vals[idx])
            best_trial = str(df.loc[idx, "trial_id"])
            best_cfg = {**_strip(configs.get(best_trial, {})), **dict(exp.fixed)}
    res = Results(best_config=best_cfg, best_metric=best_metric, dataframe=df, path=path,
                  metric=exp.metric, mode=exp.mode, best_trial=best_trial)
    if exp_dir is not None:
        res.save()
    return res


def _strip(cfg: dict) -> dict:
    try:
        from spaces.compile.tune import strip_inactive

        return strip_inactive(dict(cfg))
    except ImportError:  # pragma: no cover
        return dict(cfg)
