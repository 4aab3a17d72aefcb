"""Staged NAS pipeline: proxy-task selection -> architecture search -> final training of the
top N -> augmentation search on the best architecture (REFERENCE.md section 3).

A pipeline file::

    name: nas_digits
    space: mnasnet                 # the architecture space
    trainer: nas
    data: {arch: mnasnet, dataset: digits, image_size: 16, width_scale: 0.25}  # base settings
    max_epochs: 6                  # full training length
    proxy:
      num_models: 8                # K reference architectures, fully trained
      candidates:                  # a grid (key: list) or a list of settings mappings
        data_fraction: [0.25, 0.5]
        image_size: [8, 16]
        epochs: [3]
      target_tau: 0.65
    search: {num_samples: 16, searcher: {type: tpe, seed: 0}}
    final: {top_n: 3}
    augment: {space: randaugment}

Every stage runs through :func:`orchestrator.run` as one or more experiments under
``<storage>/<name>/`` (``reference``, ``variance``, ``proxy_<hash of the settings>``, ``search``, ``final``,
``augment``); ``pipeline.json`` there summarises each finished stage. Running the same file
again skips finished stages and experiments (and resumes an interrupted one).

Stages that train a fixed list of architectures (reference, proxy candidates, final) use the
:func:`replay` trainer: a one-parameter grid (``model`` = index) over the list, which records
every report in ``history.jsonl`` in the trial folder (the per-step proxy scores).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from spaces.errors import ArchtuneError, SpecError

from .proxy import ProxyCandidate, select_proxy, variance_check
from .spec import Experiment, _check_type, _err, _type_name, _unknown

__all__ = ["Pipeline", "ProxyStage", "SearchStage", "FinalStage", "AugmentStage", "STAGES",
           "load_pipeline", "run_pipeline", "replay"]

log = logging.getLogger("archtune.pipeline")

STAGES = ("proxy", "search", "final", "augment")
SUMMARY_FILE = "pipeline.json"
HISTORY_FILE = "history.jsonl"
MODEL_KEY = "model"
REPLAY_TRAINER = "_replay_trainer"
REPLAY_MODELS = "_replay_models"
_NONE = type(None)
# nas-trainer defaults, used to estimate a proxy's relative cost per step
_COST_DEFAULTS = {"data_fraction": 1.0, "image_size": 32, "width_scale": 1.0}


# ---------------------------------------------------------------------------------- spec
@dataclass(frozen=True, kw_only=True)
class ProxyStage:
    """Proxy-task selection.

    ``candidates``: a grid (``{key: [values]}``, cartesian product) or a list of settings
    mappings; ``epochs`` is the candidate's training length (default: the pipeline's
    ``max_epochs``), every other key overrides the pipeline's ``data``. ``cost``: ``estimate``
    (``data_fraction * (image_size / 32)**2 * width_scale**2`` per step) or ``measured`` (mean
    seconds per epoch). ``variance_repeats`` > 1 trains the first reference model that many
    times (different seeds) and requires a coefficient of variation <= ``max_cv``.
    """

    num_models: int = 10
    candidates: tuple[Mapping[str, Any], ...] = ()
    target_tau: float = 0.65
    min_valid: int = 5
    min_valid_fraction: float = 0.7
    cost: str = "estimate"
    variance_repeats: int = 0
    max_cv: float = 0.4

    _TYPES = {"num_models": int, "candidates": (dict, list), "target_tau": float,
              "min_valid": int, "min_valid_fraction": float, "cost": str,
              "variance_repeats": int, "max_cv": float}


@dataclass(frozen=True, kw_only=True)
class SearchStage:
    """Architecture search on the proxy (``searcher``/``scheduler`` as in an experiment file);
    ``max_epochs`` is the proxy length, the proxy settings override ``data``."""

    num_samples: int = 20
    searcher: Mapping[str, Any] = field(default_factory=lambda: {"type": "tpe"})
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    time_budget_s: float | None = None

    _TYPES = {"num_samples": int, "searcher": dict, "scheduler": dict,
              "time_budget_s": (float, _NONE)}


@dataclass(frozen=True, kw_only=True)
class FinalStage:
    """Full training (base settings, ``max_epochs``) of the ``top_n`` best searched
    architectures (distinct, completed trials)."""

    top_n: int = 3

    _TYPES = {"top_n": int}


@dataclass(frozen=True, kw_only=True)
class AugmentStage:
    """Augmentation search on the best final architecture, trained to the end (no proxy)."""

    space: Any = "randaugment"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    searcher: Mapping[str, Any] = field(default_factory=lambda: {"type": "grid"})
    num_samples: int = 10

    _TYPES = {"space": (str, dict), "fixed": dict, "searcher": dict, "num_samples": int}


_STAGE_SPECS = {"proxy": ProxyStage, "search": SearchStage, "final": FinalStage,
                "augment": AugmentStage}
# keys every stage experiment shares with the pipeline
_SHARED = ("space", "fixed", "trainer", "data", "metric", "mode", "max_epochs", "seed",
           "resources", "max_concurrent", "max_failures")


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """A staged NAS pipeline (see the module docstring); :func:`run_pipeline` runs it."""

    name: str
    space: Any
    fixed: Mapping[str, Any] = field(default_factory=dict)
    trainer: str = "nas"
    data: Mapping[str, Any] = field(default_factory=dict)
    metric: str = "val_acc"
    mode: str = "max"
    max_epochs: int = 10
    storage: str = "archtune_results"
    seed: int = 0
    resources: Mapping[str, Any] = field(default_factory=dict)
    max_concurrent: int | None = None
    max_failures: int = 0
    stages: tuple[str, ...] = STAGES
    proxy: ProxyStage = field(default_factory=ProxyStage)
    search: SearchStage = field(default_factory=SearchStage)
    final: FinalStage = field(default_factory=FinalStage)
    augment: AugmentStage = field(default_factory=AugmentStage)
    source: str | None = field(default=None, compare=False, repr=False)

    _TYPES = {"name": str, "space": (str, dict), "fixed": dict, "trainer": str, "data": dict,
              "metric": str, "mode": str, "max_epochs": int, "storage": str, "seed": int,
              "resources": dict, "max_concurrent": (int, _NONE), "max_failures": int,
              "stages": list, "proxy": dict, "search": dict, "final": dict, "augment": dict}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | Path | None = None,
                  validate: bool = True) -> "Pipeline":
        where = str(source) if source is not None else None
        if not isinstance(d, Mapping):
            raise SpecError(f"{where or 'pipeline'}: the pipeline must be a mapping of keys, "
                            f"got {type(d).__name__}")
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in valid:
                raise _unknown(where, str(key), valid)
            if not _check_type(value, cls._TYPES[key]):
                raise _err(where, key, f"expected {_type_name(cls._TYPES[key])}, got {value!r}")
            if key in _STAGE_SPECS:
                value = _stage_from_dict(_STAGE_SPECS[key], value, key, where)
            elif key == "stages":
                value = tuple(value)
            elif isinstance(value, dict):
                value = dict(value)
            kwargs[key] = value
        for required in ("name", "space"):
            if required not in kwargs:
                raise _err(where, required, "is required")
        pipe = cls(**kwargs, source=where)
        if validate:
            pipe.validate()
        return pipe

    @classmethod
    def from_yaml(cls, path_or_text: str | Path, *, validate: bool = True) -> "Pipeline":
        """Read a pipeline file (a path) or YAML text."""
        text, source = str(path_or_text), None
        p = Path(text)
        if isinstance(path_or_text, Path) or ("\n" not in text and p.suffix in (".yaml", ".yml")):
            if not p.is_file():
                raise SpecError(f"{p}: pipeline file not found")
            source, text = str(p.resolve()), p.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise SpecError(f"{source or 'pipeline'}: not valid YAML: {e}") from None
        return cls.from_dict(data or {}, source=source, validate=validate)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                v = {sf.name: getattr(v, sf.name) for sf in dataclasses.fields(v)}
            out[f.name] = json.loads(json.dumps(v, default=str))
        return out

    # ------------------------------------------------------------------ derived values
    def pipeline_dir(self) -> Path:
        """``<storage>/<name>``: holds pipeline.json and one folder per stage experiment."""
        p = Path(self.storage).expanduser()
        return ((p if p.is_absolute() else Path.cwd() / p) / self.name).resolve()

    def experiment(self, name: str, **overrides: Any) -> Experiment:
        """A stage experiment under :meth:`pipeline_dir` (shared keys from the pipeline)."""
        d: dict[str, Any] = {k: getattr(self, k) for k in _SHARED}
        d = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()
             if v is not None and v != {}}
        d.update(name=name, storage=str(self.pipeline_dir()))
        d.update(overrides)
        exp = Experiment.from_dict(d, validate=False)
        return dataclasses.replace(exp, source=self.source)

    def candidates(self) -> list[dict[str, Any]]:
        """The proxy candidates: the grid expanded (sorted keys), or the given list."""
        c = self.proxy.candidates
        if isinstance(c, Mapping):
            keys = sorted(c)
            vals = [v if isinstance(v, list) else [v] for v in (c[k] for k in keys)]
            return [dict(zip(keys, combo)) for combo in itertools.product(*vals)]
        return [dict(x) for x in c]

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Pipeline":
        where = self.source or "pipeline"
        if not self.name or any(ch in self.name for ch in "/\\"):
            raise _err(where, "name", f"must be a non-empty folder name, got {self.name!r}")
        if "://" in self.storage:
            raise _err(where, "storage", "a pipeline needs a local (or NFS) folder, not a URI")
        self._validate_stages(where)
        _prefixed(lambda: self.experiment("search").validate(), where, "")
        if "proxy" in self.stages:
            self._validate_proxy(where)
        if "search" in self.stages:
            s = self.search
            _prefixed(lambda: self.experiment(
                "search", num_samples=s.num_samples, searcher=dict(s.searcher),
                scheduler=dict(s.scheduler), time_budget_s=s.time_budget_s).validate(),
                where, "search.")
        if "final" in self.stages and self.final.top_n < 1:
            raise _err(where, "final.top_n", f"must be >= 1, got {self.final.top_n}")
        if "augment" in self.stages:
            a = self.augment
            _prefixed(lambda: self.experiment(
                "augment", space=a.space, fixed=dict(a.fixed), searcher=dict(a.searcher),
                num_samples=a.num_samples).validate(check_trainer=False), where, "augment.")
        return self

    def _validate_stages(self, where: str) -> None:
        for s in self.stages:
            if s not in STAGES:
                raise _err(where, "stages", f"unknown stage {s!r}; valid: {', '.join(STAGES)}")
        rest = [s for s in self.stages if s != "proxy"]
        if not rest or rest != list(STAGES[1:len(rest) + 1]) or list(self.stages) != sorted(
                self.stages, key=STAGES.index) or len(set(self.stages)) != len(self.stages):
            raise _err(where, "stages", f"must list stages in the order {list(STAGES)}, each "
                                        f"needing the one before it (proxy is optional), "
                                        f"got {list(self.stages)}")

    def _validate_proxy(self, where: str) -> None:
        p = self.proxy
        if p.num_models < 2:
            raise _err(where, "proxy.num_models", f"must be >= 2, got {p.num_models}")
        if not 2 <= p.min_valid <= p.num_models:
            raise _err(where, "proxy.min_valid", f"must be in [2, num_models={p.num_models}], "
                                                 f"got {p.min_valid}")
        if not 0 <= p.min_valid_fraction <= 1:
            raise _err(where, "proxy.min_valid_fraction", "must be in [0, 1]")
        if not -1 <= p.target_tau <= 1:
            raise _err(where, "proxy.target_tau", f"must be in [-1, 1], got {p.target_tau}")
        if p.cost not in ("estimate", "measured"):
            raise _err(where, "proxy.cost", f"must be 'estimate' or 'measured', got {p.cost!r}")
        if p.variance_repeats == 1 or p.variance_repeats < 0:
            raise _err(where, "proxy.variance_repeats", "must be 0 (off) or >= 2")
        if not p.max_cv > 0:
            raise _err(where, "proxy.max_cv", f"must be > 0, got {p.max_cv}")
        cands = self.candidates()
        if not cands:
            raise _err(where, "proxy.candidates", "at least one proxy candidate is required")
        for i, c in enumerate(cands):
            key = f"proxy.candidates[{i}]"
            if not isinstance(c, Mapping):
                raise _err(where, key, f"expected a mapping of settings, got {c!r}")
            ep = c.get("epochs", self.max_epochs)
            if not isinstance(ep, int) or isinstance(ep, bool) or ep < 1:
                raise _err(where, f"{key}.epochs", f"must be an integer >= 1, got {ep!r}")
            df = c.get("data_fraction", 1.0)
            if not _check_type(df, float) or not 0 < df <= 1:
                raise _err(where, f"{key}.data_fraction", f"must be in (0, 1], got {df!r}")
            for k in ("image_size", "width_scale"):
                if k in c and (not _check_type(c[k], float) or c[k] <= 0):
                    raise _err(where, f"{key}.{k}", f"must be a number > 0, got {c[k]!r}")
        space = self.experiment("reference").load_space()
        size = space.size()
        if size < p.num_models:
            raise _err(where, "proxy.num_models", f"the space has only {size} architectures, "
                                                  f"fewer than num_models={p.num_models}")


def _stage_from_dict(cls, d: Mapping[str, Any], prefix: str, where: str | None):
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        if key not in valid:
            raise _unknown(where, f"{prefix}.{key}", valid)
        tp = cls._TYPES[key]
        if not _check_type(value, tp):
            raise _err(where, f"{prefix}.{key}", f"expected {_type_name(tp)}, got {value!r}")
        if tp is float or (key == "time_budget_s" and value is not None):
            value = float(value)
        elif key == "candidates":
            value = dict(value) if isinstance(value, Mapping) else tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def _prefixed(fn, where: str, prefix: str) -> None:
    """Run an experiment validation; its SpecError names the pipeline file and stage key."""
    try:
        fn()
    except SpecError as e:
        msg = str(e)
        _, sep, rest = msg.partition("key '")
        raise SpecError(f"{where}: key '{prefix}{rest}" if sep else f"{where}: {msg}") from None


def load_pipeline(spec: "Pipeline | str | Path | Mapping[str, Any]") -> Pipeline:
    """Accept a Pipeline, a mapping, a YAML path or YAML text."""
    if isinstance(spec, Pipeline):
        return spec
    if isinstance(spec, Mapping):
        return Pipeline.from_dict(spec)
    return Pipeline.from_yaml(spec)


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
                keys = _stage_inputs(stage)
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
        from .runner import Results, resume, run

        d = Path(exp.experiment_dir())
        saved = d / "experiment.yaml"
        if saved.is_file():
            now = yaml.safe_load(exp.replace(storage=exp.storage_root()).to_yaml())
            if yaml.safe_load(saved.read_text()) != now:
                raise SpecError(f"{self.pipe.source or 'pipeline'}: {d} holds a different "
                                f"experiment than this pipeline now asks for (was a setting "
                                f"changed?); delete that folder or use another name/storage")
        if (d / "results.csv").is_file():
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
            r = self.run_models(_proxy_name(settings), models, {**pipe.data, **overrides},
                                epochs)
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

    def proxy_settings(self) -> tuple[dict[str, Any], int]:
        st = self.summary["stages"].get("proxy")
        if st is None:  # no proxy stage: search with the full settings
            return {}, self.pipe.max_epochs
        ch = st["choice"]
        return {k: v for k, v in ch["settings"].items() if k != "epochs"}, int(ch["steps"])

    def stage_search(self) -> dict[str, Any]:
        pipe, s = self.pipe, self.pipe.search
        settings, steps = self.proxy_settings()
        exp = pipe.experiment("search", data={**pipe.data, **settings}, max_epochs=steps,
                              num_samples=s.num_samples, searcher=dict(s.searcher),
                              scheduler=dict(s.scheduler), time_budget_s=s.time_budget_s)
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
                "best_config": top[0]["config"], "best_metric": top[0]["score"], "top": top}

    def stage_final(self) -> dict[str, Any]:
        pipe = self.pipe
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
        return {"path": res.path, "architecture": arch, "best_config": res.best_config,
                "best_metric": res.best_metric}

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
                    best["augment"] = st["augment"]["best_config"]
                    best["augment_metric"] = st["augment"]["best_metric"]
                return best
        return {}


def run_pipeline(spec: "Pipeline | str | Path | Mapping[str, Any]", address: str | None = None,
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


def _stage_inputs(stage: str) -> list[str]:
    """Spec keys a stage's results depend on: the shared keys and the sections up to it."""
    sections = set(STAGES) | {"stages"}
    shared = [f.name for f in dataclasses.fields(Pipeline)
              if f.name not in sections and f.name != "source"]
    return shared + list(STAGES[:STAGES.index(stage) + 1])


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
    """The distinct configurations of the trials that trained to the end, best first."""
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
        cid = space.config_id(cfg)
        if cid in seen:
            continue
        seen.add(cid)
        out.append({"config": cfg, "score": float(row["_score"]), "trial_id": row["trial_id"]})
    return out
