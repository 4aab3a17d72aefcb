"""Staged NAS pipeline: proxy-task selection -> architecture search -> final training of the
top N -> augmentation search on the best architecture (REFERENCE.md section 3).

The pipeline file and its validation live in :mod:`orchestrator.pipeline_spec`; its public
names are importable from here too.

Every stage runs through :func:`orchestrator.run` as one or more experiments under
``<storage>/<name>/`` (``reference``, ``variance``, ``proxy_<hash of the settings>``, ``search``, ``final``,
``augment``); ``pipeline.json`` there summarises each finished stage. Running the same file
again skips finished stages and experiments (and resumes an interrupted one).

Stages that train a fixed list of architectures (reference, proxy candidates, final) use the
:func:`replay` trainer: a one-parameter grid (``model`` = index) over the list, which records
every report in ``history.jsonl`` in the trial folder (the per-step proxy scores).

The search stage trains with the proxy exactly as it was validated: a candidate trained for E
epochs that reached the target tau at step s is searched with E-epoch schedules stopped at step
s (:func:`proxy_trial`), never with the schedule squeezed into s epochs.

A one-shot pipeline (``stages: [supernet, subnet_search, final]``) runs its stages in
:mod:`orchestrator.oneshot`.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import SpecError
from spaces.errors import ArchtuneError

from .oneshot_spec import ONESHOT_STAGES, is_oneshot
from .pipeline_spec import (
    STAGES,
    AugmentStage,
    FinalStage,
    Pipeline,
    ProxyStage,
    SearchStage,
    load_pipeline,
)
from .proxy import ProxyCandidate, select_proxy, variance_check
from .spec import Experiment

__all__ = [
    "STAGES",
    "AugmentStage",
    "FinalStage",
    "Pipeline",
    "ProxyStage",
    "SearchStage",
    "is_full_task",
    "load_pipeline",
    "proxy_trial",
    "replay",
    "run_pipeline",
]

log = logging.getLogger("archtune.pipeline")

SUMMARY_FILE = "pipeline.json"
HISTORY_FILE = "history.jsonl"
MODEL_KEY = "model"
REPLAY_TRAINER = "_replay_trainer"
REPLAY_MODELS = "_replay_models"
PROXY_TRAINER = "_proxy_trainer"
PROXY_SCHEDULE = "_proxy_schedule"
# nas-trainer defaults, used to estimate a proxy's relative cost per step
_COST_DEFAULTS = {"data_fraction": 1.0, "image_size": 32, "width_scale": 1.0}


# ---------------------------------------------------------------------------------- replay
class _HistoryContext:
    """Wraps a TrialContext: every report is also appended to ``history.jsonl``."""

    def __init__(self, ctx: Any, model: int) -> None:
        self._ctx, self._model = ctx, model
        self._path = Path(ctx.trial_dir) / HISTORY_FILE

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: Any = None) -> None:
        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}
        with open(self._path, "a") as fh:
            fh.write(json.dumps({MODEL_KEY: self._model, **row}, default=str) + "\n")
        self._ctx.report(metrics, checkpoint_dir=checkpoint_dir)


def replay(config: dict, ctx: Any) -> None:
    """Trainer that trains one of a fixed list of configurations: ``config["model"]`` indexes
    ``config["_replay_models"]``, trained by the trainer named ``config["_replay_trainer"]``
    with the remaining keys as settings. Reports are recorded in ``history.jsonl``."""
    from trainers import get_trainer

    cfg = dict(config)
    trainer = get_trainer(cfg.pop(REPLAY_TRAINER))
    models = cfg.pop(REPLAY_MODELS)
    index = int(cfg.pop(MODEL_KEY))
    trainer({**cfg, **models[index]}, _HistoryContext(ctx, index))


replay.supports_checkpoint = True


class _StopAtProxyLength(BaseException):
    """Raised by :class:`_ProxyContext` when a trainer reports past the proxy length (a
    ``BaseException`` so that a trainer's own ``except Exception`` cannot swallow it)."""


class _ProxyContext:
    """Wraps a TrialContext for the validated proxy: ``max_epochs`` is the proxy candidate's
    schedule length, while ``should_stop`` turns true once ``stop`` steps were reported; a
    report past ``stop`` is never forwarded (the trial ends there)."""

    def __init__(self, ctx: Any, schedule_epochs: int, stop: int) -> None:
        self._ctx, self._stop = ctx, int(stop)
        self.max_epochs = int(schedule_epochs)
        self._done = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def report(self, metrics: Mapping[str, Any], checkpoint_dir: Any = None) -> None:
        step = _num(metrics.get("epoch"))
        step = int(step) if step is not None else self._done + 1
        if step > self._stop:
            raise _StopAtProxyLength()
        self._done = step
        self._ctx.report(metrics, checkpoint_dir=checkpoint_dir)

    def should_stop(self) -> bool:
        return self._done >= self._stop or self._ctx.should_stop()


def proxy_trial(config: dict, ctx: Any) -> None:
    """Trainer of the search stage: the trainer named ``config["_proxy_trainer"]`` trained
    exactly as the proxy was validated, i.e. with its learning-rate (and any other) schedule
    sized to the candidate's ``config["_proxy_schedule"]`` epochs, stopped after
    ``ctx.max_epochs`` (the proxy length, the step where Kendall tau reached the target)."""
    from trainers import get_trainer

    cfg = dict(config)
    trainer = get_trainer(cfg.pop(PROXY_TRAINER))
    schedule = int(cfg.pop(PROXY_SCHEDULE))
    try:
        trainer(cfg, _ProxyContext(ctx, schedule, int(ctx.max_epochs)))
    except _StopAtProxyLength:
        pass


proxy_trial.supports_checkpoint = True


# ---------------------------------------------------------------------------------- running
class _Runner:
    def __init__(self, pipe: Pipeline, address: str | None, verbose: bool) -> None:
        self.pipe, self.address, self.verbose = pipe, address, verbose
        self.dir = pipe.pipeline_dir()
        self.summary_path = self.dir / SUMMARY_FILE
        self.summary: dict[str, Any] = {"name": pipe.name, "spec": pipe.to_dict(), "stages": {}}
        if self.summary_path.is_file():
            old = json.loads(self.summary_path.read_text())
            new = self.summary["spec"]
            for stage, st in old.get("stages", {}).items():
                keys = _stage_inputs(stage, pipe.stages)
                if st.get("status") == "complete" and any(
                        old["spec"].get(k) != new.get(k) for k in keys):
                    changed = sorted(k for k in keys if old["spec"].get(k) != new.get(k))
                    raise SpecError(
                        f"{pipe.source or 'pipeline'}: key '{changed[0]}': {self.dir} holds a "
                        f"completed stage {stage!r} run with a different value of "
                        f"{', '.join(changed)}; choose another name or storage (or delete the "
                        f"folder)")
            old["spec"] = new
            self.summary = old

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.summary_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary, indent=2, default=str))
        tmp.replace(self.summary_path)

    def execute(self, exp: Experiment):
        """Run an experiment, or load it if it finished, or resume it if it was interrupted."""
        from .runner import Results, is_complete, resume, run

        d = Path(exp.experiment_dir())
        saved = d / "experiment.yaml"
        if saved.is_file():
            now = yaml.safe_load(exp.replace(storage=exp.storage_root()).to_yaml())
            if yaml.safe_load(saved.read_text()) != now:
                raise SpecError(f"{self.pipe.source or 'pipeline'}: {d} holds a different "
                                f"experiment than this pipeline now asks for (was a setting "
                                f"changed?); delete that folder or use another name/storage")
        if is_complete(d):  # an interrupted experiment has results.csv but no completion mark
            log.info("pipeline: %s already finished, loading it", exp.name)
            return Results.load(d)
        if (d / "tuner.pkl").exists():
            return resume(d, address=self.address, verbose=self.verbose)
        return run(exp, address=self.address, verbose=self.verbose)

    # -- fixed lists of architectures ---------------------------------------------------------
    def replay_experiment(self, name: str, models: list[dict], data: Mapping[str, Any],
                          max_epochs: int) -> Experiment:
        space = {"name": "models", "parameters": {
            MODEL_KEY: {"type": "ordinal", "sequence": list(range(len(models)))}}}
        return self.pipe.experiment(
            name, space=space, fixed={}, trainer=f"{__name__}:replay",
            data={**dict(data), REPLAY_TRAINER: self.pipe.trainer, REPLAY_MODELS: models},
            searcher={"type": "grid"}, scheduler={"type": "fifo"}, num_samples=len(models),
            max_epochs=max_epochs)

    def run_models(self, name: str, models: list[dict], data: Mapping[str, Any],
                   max_epochs: int) -> dict[str, Any]:
        """Train ``models``; per model its final score and per-step scores."""
        res = self.execute(self.replay_experiment(name, models, data, max_epochs))
        metric = self.pipe.metric
        steps: list[list[float | None]] = [[None] * max_epochs for _ in models]
        seconds: list[float] = []
        for _, row in res.dataframe.iterrows():
            hist = Path(res.path) / f"trial_{row['trial_id']}" / HISTORY_FILE
            if not hist.is_file():
                continue
            for line in hist.read_text().splitlines():
                r = json.loads(line)
                ep = int(r.get("epoch", 0) or 0)
                if 1 <= ep <= max_epochs and metric in r and not r.get("failed"):
                    steps[int(r[MODEL_KEY])][ep - 1] = _num(r[metric])
            t, ep = _num(row.get("time_total_s")), _num(row.get("epochs"))
            if t is not None and ep:
                seconds.append(t / ep)
        finals = [next((v for v in reversed(s) if v is not None), None) for s in steps]
        return {"path": res.path, "models": models, "scores": finals, "steps": steps,
                "seconds_per_epoch": sum(seconds) / len(seconds) if seconds else None}

    # -- stages --------------------------------------------------------------------------------
    def stage_proxy(self) -> dict[str, Any]:
        pipe, p = self.pipe, self.pipe.proxy
        space = pipe.experiment("reference").load_space()
        models = _sample_distinct(space, p.num_models, pipe.seed)
        ref = self.run_models("reference", models, pipe.data, pipe.max_epochs)
        out: dict[str, Any] = {"reference": {k: ref[k] for k in ("path", "models", "scores")}}
        if p.variance_repeats:
            var = self.run_models("variance", [models[0]] * p.variance_repeats, pipe.data,
                                  pipe.max_epochs)
            check = variance_check([s for s in var["scores"] if s is not None], p.max_cv)
            out["variance"] = {"path": var["path"], "scores": var["scores"], "cv": check.cv,
                               "max_cv": check.max_cv, "passed": check.passed}
            self.summary["stages"]["proxy"] = {"status": "running", **out}
            self.save()
            if not check:
                raise ArchtuneError(
                    f"variance check failed: coefficient of variation {check.cv:.3f} > max_cv "
                    f"{check.max_cv} over {p.variance_repeats} trainings of one model "
                    f"(scores {var['scores']}); the proxy could not rank models reliably. "
                    f"Make training more stable (more data/epochs, lower lr) or raise "
                    f"proxy.max_cv.")
        cands, runs = [], []
        for settings in pipe.candidates():
            epochs = int(settings.get("epochs", pipe.max_epochs))
            overrides = {k: v for k, v in settings.items() if k != "epochs"}
            if is_full_task(settings, pipe.data, pipe.max_epochs):
                r = ref  # the reference trainings are this candidate's trainings
            else:
                r = self.run_models(_proxy_name(settings), models,
                                    {**pipe.data, **overrides}, epochs)
            per_step = (r["seconds_per_epoch"] or 0.0) if p.cost == "measured" \
                else _estimate_cost(settings, pipe.data)
            cands.append(ProxyCandidate(settings=settings, scores=r["steps"], cost=per_step))
            runs.append({"settings": settings, "path": r["path"], "cost_per_step": per_step})
        out["candidates"] = runs
        try:  # Kendall tau does not depend on the mode (both rankings flip together)
            choice = select_proxy(cands, ref["scores"], target_tau=p.target_tau,
                                  min_valid=p.min_valid,
                                  min_valid_fraction=p.min_valid_fraction)
        except ArchtuneError:
            self.summary["stages"]["proxy"] = {"status": "failed", **out}
            self.save()
            raise
        out["choice"] = choice.to_dict()
        return out

    def proxy_settings(self) -> tuple[dict[str, Any], int, int]:
        """``(settings, steps, schedule_epochs)`` of the validated proxy: its settings, the
        step where tau reached the target and the epochs its schedule was sized to."""
        st = self.summary["stages"].get("proxy")
        if st is None:  # no proxy stage: search with the full settings
            return {}, self.pipe.max_epochs, self.pipe.max_epochs
        ch = st["choice"]
        schedule = int(ch["settings"].get("epochs", self.pipe.max_epochs))
        return ({k: v for k, v in ch["settings"].items() if k != "epochs"}, int(ch["steps"]),
                schedule)

    def search_experiment(self) -> Experiment:
        """The search stage's experiment: the proxy's settings, trained for the proxy length
        with the schedule of the validated candidate (``proxy_trial`` when they differ)."""
        pipe, s = self.pipe, self.pipe.search
        settings, steps, schedule = self.proxy_settings()
        data: dict[str, Any] = {**pipe.data, **settings}
        trainer: Any = pipe.trainer
        if schedule != steps:
            data.update({PROXY_TRAINER: pipe.trainer, PROXY_SCHEDULE: schedule})
            trainer = f"{__name__}:proxy_trial"
        return pipe.experiment("search", data=data, trainer=trainer, max_epochs=steps,
                               num_samples=s.num_samples, searcher=dict(s.searcher),
                               scheduler=dict(s.scheduler), time_budget_s=s.time_budget_s)

    def stage_search(self) -> dict[str, Any]:
        pipe = self.pipe
        settings, steps, schedule = self.proxy_settings()
        exp = self.search_experiment()
        grace = exp.scheduler.options.get("grace_period")
        if isinstance(grace, (int, float)) and grace > steps:
            log.warning("pipeline: scheduler grace_period %s > proxy length %s; using %s",
                        grace, steps, steps)
            exp = exp.replace(scheduler=dataclasses.replace(
                exp.scheduler, options={**exp.scheduler.options, "grace_period": steps}))
        res = self.execute(exp)
        top = _top_configs(res, exp)
        if not top:
            raise ArchtuneError(f"search stage ({res.path}): no trial completed with metric "
                                f"{pipe.metric!r}; nothing to train in the final stage")
        return {"path": res.path, "settings": settings, "max_epochs": steps,
                "schedule_epochs": schedule, "best_config": top[0]["config"],
                "best_metric": top[0]["score"], "top": top}

    def stage_supernet(self) -> dict[str, Any]:
        from .oneshot import run_supernet

        return run_supernet(self)

    def stage_subnet_search(self) -> dict[str, Any]:
        from .oneshot import run_subnet_search

        return run_subnet_search(self)

    def stage_final(self) -> dict[str, Any]:
        pipe = self.pipe
        if is_oneshot(pipe.stages):
            from .oneshot import run_final

            return run_final(self)
        top = self.summary["stages"]["search"]["top"][:pipe.final.top_n]
        models = [t["config"] for t in top]
        r = self.run_models("final", models, pipe.data, pipe.max_epochs)
        rows = [{"config": m, "score": s, "search_score": t["score"]}
                for m, s, t in zip(models, r["scores"], top)]
        ok = [x for x in rows if x["score"] is not None]
        if not ok:
            raise ArchtuneError(f"final stage ({r['path']}): no architecture reported "
                                f"{pipe.metric!r}")
        best = (max if pipe.mode == "max" else min)(ok, key=lambda x: x["score"])
        return {"path": r["path"], "models": rows, "best_config": best["config"],
                "best_metric": best["score"]}

    def stage_augment(self) -> dict[str, Any]:
        pipe, a = self.pipe, self.pipe.augment
        arch = self.summary["stages"]["final"]["best_config"]
        exp = pipe.experiment("augment", space=a.space, fixed=dict(a.fixed),
                              data={**pipe.data, **arch}, searcher=dict(a.searcher),
                              scheduler={"type": "fifo"}, num_samples=a.num_samples)
        res = self.execute(exp)
        # the no-augmentation baseline: the final stage trained this architecture with the
        # same settings and length, without augmentation
        baseline = _num(self.summary["stages"]["final"]["best_metric"])
        found = _num(res.best_metric)
        sign = 1.0 if pipe.mode == "max" else -1.0
        gain = None if found is None or baseline is None else sign * (found - baseline)
        keep_baseline = gain is None or gain <= 0
        return {"path": res.path, "architecture": arch, "best_config": res.best_config,
                "best_metric": res.best_metric, "baseline_metric": baseline, "gain": gain,
                "chosen": "none" if keep_baseline else res.best_config,
                "chosen_metric": baseline if keep_baseline else found}

    def run(self) -> dict[str, Any]:
        for stage in self.pipe.stages:
            done = self.summary["stages"].get(stage, {})
            if done.get("status") == "complete":
                log.info("pipeline: stage %s already complete, skipping", stage)
                continue
            t0 = time.time()
            out = getattr(self, f"stage_{stage}")()
            self.summary["stages"][stage] = {"status": "complete", **out,
                                             "seconds": round(time.time() - t0, 1)}
            self.save()
        self.summary["best"] = self._best()
        self.save()
        return {"path": str(self.dir), **self.summary}

    def _best(self) -> dict[str, Any]:
        st = self.summary["stages"]
        for stage in ("final", "search"):
            if stage in st:
                best = {"architecture": st[stage]["best_config"],
                        "metric": st[stage]["best_metric"], "from_stage": stage}
                if "augment" in st:
                    aug = st["augment"]
                    best["augment"] = aug.get("chosen", aug["best_config"])
                    best["augment_metric"] = aug.get("chosen_metric", aug["best_metric"])
                    best["augment_gain"] = aug.get("gain")
                return best
        return {}


def run_pipeline(spec: Pipeline | str | Path | Mapping[str, Any], address: str | None = None,
                 *, verbose: bool = False) -> dict[str, Any]:
    """Validate ``spec`` (before Ray starts) and run its stages in order; returns the summary
    written to ``<storage>/<name>/pipeline.json`` (plus ``path``). Finished stages and stage
    experiments are skipped, so re-running after an interruption continues where it stopped."""
    pipe = load_pipeline(spec)
    pipe.validate()
    from .runner import _ensure_ray

    runner = _Runner(pipe, address, verbose)
    started = _ensure_ray(address, verbose)
    try:
        return runner.run()
    finally:
        if started:
            import ray

            ray.shutdown()


# ---------------------------------------------------------------------------------- helpers
def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _stage_inputs(stage: str, order: Any = STAGES) -> list[str]:
    """Spec keys a stage's results depend on: the shared keys and the sections up to it
    (in the pipeline's stage ``order``)."""
    sections = set(STAGES) | set(ONESHOT_STAGES) | {"stages"}
    shared = [f.name for f in dataclasses.fields(Pipeline)
              if f.name not in sections and f.name != "source"]
    order = list(order) if stage in order else list(STAGES)
    return shared + order[:order.index(stage) + 1]


def is_full_task(settings: Mapping[str, Any], data: Mapping[str, Any], max_epochs: int) -> bool:
    """True when a proxy candidate's ``settings`` train exactly as the reference models do:
    ``epochs`` (default ``max_epochs``) equal to ``max_epochs`` and every other key equal to
    its value in ``data`` (``data_fraction: 1.0``, every image, also when ``data`` leaves it
    out). Such a candidate's scores are the reference trainings' own, so the pipeline reuses
    them instead of training the models again."""
    if int(settings.get("epochs", max_epochs)) != int(max_epochs):
        return False
    base = {"data_fraction": 1.0, **dict(data)}
    return all(k in base and base[k] == v for k, v in settings.items() if k != "epochs")


def _proxy_name(settings: Mapping[str, Any]) -> str:
    """Experiment name of a proxy candidate: stable under reordering of the candidate list."""
    import hashlib

    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return f"proxy_{hashlib.sha1(blob).hexdigest()[:8]}"


def _estimate_cost(settings: Mapping[str, Any], base: Mapping[str, Any]) -> float:
    """Relative training cost of one epoch: data x pixels x width**2."""
    v = {k: float(settings.get(k, base.get(k, d)) or d) for k, d in _COST_DEFAULTS.items()}
    return v["data_fraction"] * (v["image_size"] / 32) ** 2 * v["width_scale"] ** 2


def _sample_distinct(space: Any, n: int, seed: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(seed)
    seen: dict[str, dict] = {}
    for _ in range(200 * n):
        cfg = space.canonical(space.sample(rng))
        seen.setdefault(space.config_id(cfg), cfg)
        if len(seen) == n:
            return list(seen.values())
    raise ArchtuneError(f"could not sample {n} distinct architectures from space "
                        f"{getattr(space, 'name', '?')!r} (found {len(seen)})")


def _top_configs(res: Any, exp: Experiment) -> list[dict[str, Any]]:
    """The distinct architectures of the trials that trained to the end, best first: rows
    with the same reported ``arch_id`` (or, without one, the same ``config_id``) are one."""
    import pandas as pd

    df = res.dataframe
    if df.empty or exp.metric not in df.columns:
        return []
    df = df[df["status"].isin(["completed", "duplicate"])].copy()
    df["_score"] = pd.to_numeric(df[exp.metric], errors="coerce")
    df = df[df["_score"].notna()].sort_values("_score", ascending=exp.mode == "min")
    space = exp.load_space()
    out, seen = [], set()
    for _, row in df.iterrows():
        raw = {k[len("config/"):]: v for k, v in row.items()
               if k.startswith("config/") and not (isinstance(v, float) and math.isnan(v))}
        cfg = {**space.canonical(raw), **dict(exp.fixed)}
        arch = row.get("arch_id")
        cid = str(arch) if isinstance(arch, str) and arch else space.config_id(cfg)
        if cid in seen:
            continue
        seen.add(cid)
        out.append({"config": cfg, "score": float(row["_score"]), "trial_id": row["trial_id"]})
    return out
