"""Pipeline specification: the staged NAS pipeline file <-> typed, immutable objects, validated
before Ray starts (:mod:`orchestrator.pipeline` runs it; REFERENCE.md section 3).

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
    search: {num_samples: 16}      # searcher: archtune's default search (quick) unless named
    final: {top_n: 3}
    augment: {space: randaugment}

Every unknown key and every wrongly typed value is rejected with a :class:`SpecError` that
names the file, the dotted key and what would be valid; each stage's experiment is validated
as :class:`~orchestrator.spec.Experiment` validates an experiment file.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import SpecError

from .oneshot_spec import SubnetSearchStage, SupernetStage, is_oneshot, validate_oneshot
from .spec import Experiment
from .validation import check_keys, check_type, key_error, read_yaml, require_mapping, spec_to_dict

__all__ = [
    "STAGES",
    "AugmentStage",
    "FinalStage",
    "Pipeline",
    "ProxyStage",
    "SearchStage",
    "load_pipeline",
]

STAGES = ("proxy", "search", "final", "augment")
_NONE = type(None)


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
    """Architecture search on the proxy (``searcher``/``scheduler`` as in an experiment file;
    the searcher defaults to archtune's default search, ``quick``, as in an experiment file);
    ``max_epochs`` is the proxy length, the proxy settings override ``data``."""

    num_samples: int = 20
    searcher: Mapping[str, Any] = field(default_factory=lambda: {"type": "quick"})
    scheduler: Mapping[str, Any] = field(default_factory=dict)
    time_budget_s: float | None = None

    _TYPES = {"num_samples": int, "searcher": dict, "scheduler": dict,
              "time_budget_s": (float, _NONE)}


@dataclass(frozen=True, kw_only=True)
class FinalStage:
    """Full training (base settings, ``max_epochs``) of the ``top_n`` best searched
    architectures (distinct, completed trials). In a one-shot pipeline ``init`` chooses
    ``scratch`` (train from random init) or ``inherit`` (fine-tune the supernet's weights)."""

    top_n: int = 3
    init: str = "scratch"

    _TYPES = {"top_n": int, "init": str}


@dataclass(frozen=True, kw_only=True)
class AugmentStage:
    """Augmentation search on the best final architecture, trained to the end (no proxy).

    The no-augmentation baseline is always part of the comparison: it is the final stage's
    score of that architecture (same settings and length, no augmentation). The summary
    reports ``gain`` (best augmentation minus baseline, positive = better in the pipeline's
    ``mode``) and ``chosen``: the best augmentation, or ``"none"`` when none beat the
    baseline."""

    space: Any = "randaugment"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    searcher: Mapping[str, Any] = field(default_factory=lambda: {"type": "grid"})
    num_samples: int = 10

    _TYPES = {"space": (str, dict), "fixed": dict, "searcher": dict, "num_samples": int}


_STAGE_SPECS = {"proxy": ProxyStage, "search": SearchStage, "final": FinalStage,
                "augment": AugmentStage, "supernet": SupernetStage,
                "subnet_search": SubnetSearchStage}
# keys every stage experiment shares with the pipeline
_SHARED = ("space", "fixed", "trainer", "data", "metric", "mode", "max_epochs", "seed",
           "resources", "max_concurrent", "max_failures")


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """A staged NAS pipeline (see the module docstring); :func:`orchestrator.pipeline.run_pipeline`
    runs it."""

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
    supernet: SupernetStage = field(default_factory=SupernetStage)
    subnet_search: SubnetSearchStage = field(default_factory=SubnetSearchStage)
    source: str | None = field(default=None, compare=False, repr=False)

    _TYPES = {"name": str, "space": (str, dict), "fixed": dict, "trainer": str, "data": dict,
              "metric": str, "mode": str, "max_epochs": int, "storage": str, "seed": int,
              "resources": dict, "max_concurrent": (int, _NONE), "max_failures": int,
              "stages": list, "proxy": dict, "search": dict, "final": dict, "augment": dict,
              "supernet": dict, "subnet_search": dict}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | Path | None = None,
                  validate: bool = True) -> Pipeline:
        where = str(source) if source is not None else None
        require_mapping(d, where, "pipeline")
        check_keys(d, cls, cls._TYPES, where=where)
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in _STAGE_SPECS:
                value = _stage_from_dict(_STAGE_SPECS[key], value, key, where)
            elif key == "stages":
                value = tuple(value)
            elif isinstance(value, dict):
                value = dict(value)
            kwargs[key] = value
        for required in ("name", "space"):
            if required not in kwargs:
                raise key_error(where, required, "is required")
        pipe = cls(**kwargs, source=where)
        if validate:
            pipe.validate()
        return pipe

    @classmethod
    def from_yaml(cls, path_or_text: str | Path, *, validate: bool = True) -> Pipeline:
        """Read a pipeline file (a path) or YAML text."""
        data, source = read_yaml(path_or_text, "pipeline")
        return cls.from_dict(data, source=source, validate=validate)

    def to_dict(self) -> dict[str, Any]:
        return spec_to_dict(self, _json_plain)

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
    def validate(self) -> Pipeline:
        where = self.source or "pipeline"
        if not self.name or any(ch in self.name for ch in "/\\"):
            raise key_error(where, "name", f"must be a non-empty folder name, got {self.name!r}")
        if "://" in self.storage:
            raise key_error(where, "storage", "a pipeline needs a local (or NFS) folder, not a URI")
        if is_oneshot(self.stages):
            validate_oneshot(self, where)
            return self
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
            raise key_error(where, "final.top_n", f"must be >= 1, got {self.final.top_n}")
        if "augment" in self.stages:
            a = self.augment
            _prefixed(lambda: self.experiment(
                "augment", space=a.space, fixed=dict(a.fixed), searcher=dict(a.searcher),
                num_samples=a.num_samples).validate(check_trainer=False), where, "augment.")
        return self

    def _validate_stages(self, where: str) -> None:
        for s in self.stages:
            if s not in STAGES:
                raise key_error(where, "stages", f"unknown stage {s!r}; valid: {', '.join(STAGES)}")
        rest = [s for s in self.stages if s != "proxy"]
        if not rest or rest != list(STAGES[1:len(rest) + 1]) or list(self.stages) != sorted(
                self.stages, key=STAGES.index) or len(set(self.stages)) != len(self.stages):
            raise key_error(where, "stages", f"must list stages in the order {list(STAGES)}, each "
                                        f"needing the one before it (proxy is optional), "
                                        f"got {list(self.stages)}")

    def _validate_proxy(self, where: str) -> None:
        p = self.proxy
        if p.num_models < 2:
            raise key_error(where, "proxy.num_models", f"must be >= 2, got {p.num_models}")
        if not 2 <= p.min_valid <= p.num_models:
            raise key_error(where, "proxy.min_valid", f"must be in [2, num_models={p.num_models}], "
                                                 f"got {p.min_valid}")
        if not 0 <= p.min_valid_fraction <= 1:
            raise key_error(where, "proxy.min_valid_fraction", "must be in [0, 1]")
        if not -1 <= p.target_tau <= 1:
            raise key_error(where, "proxy.target_tau", f"must be in [-1, 1], got {p.target_tau}")
        if p.cost not in ("estimate", "measured"):
            raise key_error(where, "proxy.cost", f"must be 'estimate' or 'measured', got {p.cost!r}")
        if p.variance_repeats == 1 or p.variance_repeats < 0:
            raise key_error(where, "proxy.variance_repeats", "must be 0 (off) or >= 2")
        if not p.max_cv > 0:
            raise key_error(where, "proxy.max_cv", f"must be > 0, got {p.max_cv}")
        cands = self.candidates()
        if not cands:
            raise key_error(where, "proxy.candidates", "at least one proxy candidate is required")
        for i, c in enumerate(cands):
            key = f"proxy.candidates[{i}]"
            if not isinstance(c, Mapping):
                raise key_error(where, key, f"expected a mapping of settings, got {c!r}")
            ep = c.get("epochs", self.max_epochs)
            if not isinstance(ep, int) or isinstance(ep, bool) or ep < 1:
                raise key_error(where, f"{key}.epochs", f"must be an integer >= 1, got {ep!r}")
            df = c.get("data_fraction", 1.0)
            if not check_type(df, float) or not 0 < df <= 1:
                raise key_error(where, f"{key}.data_fraction", f"must be in (0, 1], got {df!r}")
            for k in ("image_size", "width_scale"):
                if k in c and (not check_type(c[k], float) or c[k] <= 0):
                    raise key_error(where, f"{key}.{k}", f"must be a number > 0, got {c[k]!r}")
        space = self.experiment("reference").load_space()
        size = space.size()
        if size < p.num_models:
            raise key_error(where, "proxy.num_models", f"the space has only {size} architectures, "
                                                  f"fewer than num_models={p.num_models}")


def _stage_from_dict(cls, d: Mapping[str, Any], prefix: str, where: str | None):
    check_keys(d, cls, cls._TYPES, f"{prefix}.", where)
    kwargs: dict[str, Any] = {}
    for key, value in d.items():
        tp = cls._TYPES[key]
        if tp is float or (key == "time_budget_s" and value is not None):
            value = float(value)
        elif key == "candidates":
            value = dict(value) if isinstance(value, Mapping) else tuple(value)
        elif key == "constraints":
            value = tuple(str(c) for c in value)
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


def load_pipeline(spec: Pipeline | str | Path | Mapping[str, Any]) -> Pipeline:
    """Accept a Pipeline, a mapping, a YAML path or YAML text."""
    if isinstance(spec, Pipeline):
        return spec
    if isinstance(spec, Mapping):
        return Pipeline.from_dict(spec)
    return Pipeline.from_yaml(spec)


def _json_plain(v: Any) -> Any:
    """``v`` as JSON gives it back (tuples become lists, other objects their ``str``)."""
    return json.loads(json.dumps(v, default=str))
