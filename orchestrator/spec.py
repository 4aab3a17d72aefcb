"""Experiment specification: YAML <-> typed, immutable objects, validated before Ray starts.

An experiment file looks like::

    name: quickstart
    space: quicktune_cpu          # library name, a space file, or an inline dict
    fixed: {model: resnet18}      # parameters pinned to one value
    trainer: finetune             # "finetune", "nas" or "module:function"
    data: {dataset: digits, image_size: 32}
    metric: val_acc
    mode: max
    searcher: {type: tpe, seed: 0, n_startup_trials: 4}
    scheduler: {type: asha, options: {grace_period: 1, reduction_factor: 2}}
    num_samples: 12
    max_epochs: 5

Every unknown key and every wrongly typed value is rejected with a :class:`SpecError` that
names the file, the dotted key and what would be valid.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from spaces.errors import ArchtuneError
from orchestrator.errors import SpecError
from orchestrator.registries import SCHEDULERS as _SCHEDULER_REGISTRY
from orchestrator.registries import SEARCHERS as _SEARCHER_REGISTRY

from .validation import (check_type, key_error, read_yaml, require_mapping, spec_to_dict,
                         type_name, unknown_key)

__all__ = [
    "Experiment",
    "SearcherSpec",
    "SchedulerSpec",
    "ResourcesSpec",
    "SpecError",
    "SEARCHERS",
    "SCHEDULERS",
    "SCHEDULER_OPTIONS",
    "load_experiment",
]

SEARCHERS = tuple(_SEARCHER_REGISTRY.list())
SCHEDULERS = tuple(_SCHEDULER_REGISTRY.list())

# Options each scheduler accepts (value: expected type). max_t is always max_epochs.
_NUM = (int, float)
_NONE = type(None)
SCHEDULER_OPTIONS: dict[str, dict[str, Any]] = {
    "fifo": {},
    "asha": {"grace_period": int, "reduction_factor": _NUM, "brackets": int},
    "hyperband": {"reduction_factor": _NUM},
    "median": {"grace_period": _NUM, "min_samples_required": int, "hard_stop": bool},
    "pbt": {
        "perturbation_interval": int,
        "burn_in_period": int,
        "quantile_fraction": float,
        "resample_probability": float,
        "perturbation_factors": list,
        "synch": bool,
    },
    "pb2": {  # Ray's PB2 has no burn_in_period
        "perturbation_interval": int,
        "quantile_fraction": float,
        "synch": bool,
    },
}

_PIP_NAMES = {"sklearn": "scikit-learn", "GPy": "GPy"}


def _pb2_missing_dependency() -> str | None:
    """The pip name of what the installed Ray's PB2 cannot import (scikit-learn in current
    Ray, GPy in releases before ray-project/ray#59152), or ``None`` when PB2 is usable."""
    try:
        import ray.tune.schedulers.pb2_utils  # noqa: F401 - imports PB2's GP library
    except ImportError as exc:
        name = (exc.name or "").split(".")[0] or "GPy"
        return _PIP_NAMES.get(name, name)
    return None


# metric -> direction it only makes sense to optimise in
_KNOWN_METRIC_MODES = {"val_acc": "max", "val_loss": "min", "train_loss": "min"}
_TRAINER_ALIASES = ("finetune", "nas")


@dataclass(frozen=True, kw_only=True)
class SearcherSpec:
    """How configurations are proposed: ``random`` (the space's seeded sampler, duplicates
    reused), ``grid`` (every distinct valid config, at most ``max_grid_size``) or ``tpe``
    (Optuna TPE, define-by-run; trials stopped by a scheduler are told to Optuna as PRUNED)."""

    type: str = "quick"
    seed: int | None = None
    n_startup_trials: int = 10
    storage: str | None = None  # optuna storage URL, e.g. sqlite:///study.db (optuna-dashboard)
    study_name: str | None = None
    multivariate: bool = False
    max_grid_size: int = 10_000
    # evolution / local (orchestrator.evolution)
    population_size: int = 20
    sample_size: int = 5
    mutation_prob: float = 0.2
    crossover_prob: float = 0.0
    objectives: tuple = ()      # [[metric, max|min], ...]: NSGA-II with two or more
    constraints: tuple = ()     # ["params <= 2e5", ...]
    max_steps: int = 50

    def __post_init__(self) -> None:
        for name in ("objectives", "constraints"):
            object.__setattr__(self, name, tuple(
                tuple(v) if isinstance(v, list) else v for v in getattr(self, name)))

    _TYPES = {"type": str, "seed": (int, _NONE), "n_startup_trials": int,
              "storage": (str, _NONE), "study_name": (str, _NONE),
              "multivariate": bool, "max_grid_size": int, "population_size": int,
              "sample_size": int, "mutation_prob": float, "crossover_prob": float,
              "objectives": list, "constraints": list, "max_steps": int}


@dataclass(frozen=True, kw_only=True)
class SchedulerSpec:
    """When trials stop or are perturbed. ``options`` holds the scheduler's own knobs
    (see ``SCHEDULER_OPTIONS``); ``max_t`` is always the experiment's ``max_epochs``."""

    type: str = "fifo"
    options: Mapping[str, Any] = field(default_factory=dict)

    _TYPES = {"type": str, "options": dict}


@dataclass(frozen=True, kw_only=True)
class ResourcesSpec:
    """Resources per trial; ``gpu`` may be fractional (0.5 = two trials share a GPU)."""

    cpu: float = 1.0
    gpu: float = 0.0

    _TYPES = {"cpu": float, "gpu": float}


_SUB_SPECS = {"searcher": SearcherSpec, "scheduler": SchedulerSpec, "resources": ResourcesSpec}


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """One HPO/NAS experiment. Build it in Python (``Experiment(name=..., space=...)``) or
    from YAML (:meth:`from_yaml`); :meth:`validate` checks everything that can be checked
    before Ray starts (the space loads, fixed values are in it, the trainer resolves, ...)."""

    name: str
    space: Any = None  # library name | file path | inline dict (default: network / trainer's)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    trainer: Any = "finetune"  # name | "module:object" | a callable (e.g. a ModelSpace)
    network: Any = None  # a composed-network description (inline or a path): trainer compose
    data: Mapping[str, Any] = field(default_factory=dict)
    metric: str = "val_acc"
    mode: str = "max"
    searcher: SearcherSpec = field(default_factory=SearcherSpec)
    scheduler: SchedulerSpec = field(default_factory=SchedulerSpec)
    num_samples: int = 10
    max_concurrent: int | None = None
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    max_epochs: int = 10
    time_budget_s: float | None = None
    storage: str = "archtune_results"
    max_failures: int = 0
    seed: int = 0
    # where the spec came from (not part of the YAML); relative paths resolve against it
    source: str | None = field(default=None, compare=False, repr=False)

    _TYPES = {"name": str, "space": (str, dict), "fixed": dict, "trainer": str, "data": dict,
              "network": (str, dict),
              "metric": str, "mode": str, "searcher": dict, "scheduler": dict,
              "num_samples": int, "max_concurrent": (int, _NONE), "resources": dict,
              "max_epochs": int, "time_budget_s": (float, _NONE), "storage": str,
              "max_failures": int, "seed": int}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | Path | None = None,
                  validate: bool = True) -> "Experiment":
        """Build from a plain mapping (as read from YAML); rejects unknown keys and types."""
        where = str(source) if source is not None else None
        require_mapping(d, where, "experiment")
        valid = [f.name for f in dataclasses.fields(cls) if f.name != "source"]
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in valid:
                raise unknown_key(where, str(key), valid)
            tp = cls._TYPES[key]
            if not check_type(value, tp):
                raise key_error(where, key, f"expected {type_name(tp)}, got {value!r} "
                                       f"({type(value).__name__})")
            if key in _SUB_SPECS:
                value = _sub_from_dict(_SUB_SPECS[key], value, key, where)
            elif key in ("fixed", "data"):
                value = dict(value)
            elif key == "time_budget_s" and value is not None:
                value = float(value)
            kwargs[key] = value
        if "network" in kwargs:
            kwargs.setdefault("trainer", "compose")
        needs_space = "network" not in kwargs and ":" not in str(kwargs.get("trainer", ""))
        for required in ("name", "space") if needs_space else ("name",):
            if required not in kwargs:
                raise key_error(where, required, "is required")
        exp = cls(**kwargs, source=where)
        if validate:
            exp.validate()
        return exp

    @classmethod
    def from_yaml(cls, path_or_text: str | Path, *, validate: bool = True) -> "Experiment":
        """Read an experiment file (a path) or YAML text."""
        data, source = read_yaml(path_or_text, "experiment")
        return cls.from_dict(data, source=source, validate=validate)

    def to_dict(self) -> dict[str, Any]:
        return spec_to_dict(self, _plain)

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialise (space given as a file path is made absolute so the YAML stands alone)."""
        d = self.to_dict()
        for key in ("space", "network"):
            value = getattr(self, key)
            if isinstance(value, str):
                resolved = self._resolve_path(value)
                if resolved is not None:
                    d[key] = str(resolved)
            elif value is None:
                d.pop(key, None)
        if not isinstance(self.trainer, str):
            d["trainer"] = object_reference(self.trainer)
        text = yaml.safe_dump(d, sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def replace(self, **changes: Any) -> "Experiment":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ derived values
    def _resolve_path(self, value: str) -> Path | None:
        """A relative file path resolves against the spec file's folder, then the cwd."""
        p = Path(value).expanduser()
        if p.is_absolute():
            return p if p.exists() else None
        if self.source:
            cand = Path(self.source).parent / p
            if cand.exists():
                return cand.resolve()
        return p.resolve() if p.exists() else None

    def load_space(self):
        """The search space with ``fixed`` applied (SpaceError becomes SpecError)."""
        from spaces.formats import load_space

        where = self.source or "experiment"
        spec = self.space
        if isinstance(spec, str):
            resolved = self._resolve_path(spec)
            if resolved is not None:
                spec = resolved
        if spec is None:
            spec = self._derived_space(where)
        try:
            space = load_space(spec)
        except ArchtuneError as e:
            raise key_error(where, "space", f"cannot load space {self.space!r}: {e}") from None
        except (KeyError, ValueError, OSError) as e:
            raise key_error(where, "space", f"cannot load space {self.space!r}: {e}") from None
        if self.fixed:
            names = list(space.params)
            for k in self.fixed:
                if k not in space:
                    raise unknown_key(where, f"fixed.{k}", names)
            try:
                space = space.with_fixed(dict(self.fixed))
            except (ArchtuneError, ValueError) as e:
                raise key_error(where, "fixed", f"value not in the space: {e}") from None
        return space

    def _derived_space(self, where: str):
        """The space of ``network`` or of a trainer that has one (a ``ModelSpace``)."""
        if self.network is not None:
            return self._network_trainer(where).space
        trainer = self.resolve_trainer()
        space = getattr(trainer, "space", None)
        if space is None:
            raise key_error(where, "space", f"is required: trainer {self.trainer!r} has no "
                                            "space of its own (give a library name, a file or "
                                            "a dict)")
        return space

    def _network_trainer(self, where: str):
        from trainers.compose.trainer import NetworkTrainer

        net = self.network
        if isinstance(net, str):
            net = self._resolve_path(net) or net
        try:
            return NetworkTrainer(net)
        except ArchtuneError as e:
            raise key_error(where, "network", str(e)) from None

    def storage_root(self) -> str:
        """Absolute storage path (URIs are returned unchanged)."""
        if "://" in self.storage:
            return self.storage
        p = Path(self.storage).expanduser()
        if not p.is_absolute():
            p = (Path.cwd() / p)
        return str(p.resolve())

    def experiment_dir(self) -> str:
        root = self.storage_root()
        return root.rstrip("/") + "/" + self.name

    # ------------------------------------------------------------------ validation
    def validate(self, *, check_space: bool = True, check_trainer: bool = True) -> "Experiment":
        where = self.source or "experiment"
        if not self.name or any(c in self.name for c in "/\\") or self.name.strip() != self.name:
            raise key_error(where, "name",
                       f"must be a non-empty folder name without '/', got {self.name!r}")
        if self.mode not in ("min", "max"):
            raise key_error(where, "mode", f"must be 'min' or 'max', got {self.mode!r}")
        if not self.metric:
            raise key_error(where, "metric", "must be a non-empty metric name reported by the trainer")
        want = _KNOWN_METRIC_MODES.get(self.metric)
        if want and want != self.mode:
            raise key_error(where, "mode", f"metric {self.metric!r} should be optimised with mode "
                                      f"{want!r}, not {self.mode!r}")
        for key, low in (("num_samples", 1), ("max_epochs", 1), ("max_failures", -1)):
            if getattr(self, key) < low:
                raise key_error(where, key, f"must be >= {low}, got {getattr(self, key)}")
        if self.max_concurrent is not None and self.max_concurrent < 1:
            raise key_error(where, "max_concurrent", f"must be >= 1, got {self.max_concurrent}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise key_error(where, "time_budget_s", f"must be > 0, got {self.time_budget_s}")
        if self.resources.cpu <= 0 or self.resources.gpu < 0:
            raise key_error(where, "resources", f"cpu must be > 0 and gpu >= 0, got "
                                           f"cpu={self.resources.cpu}, gpu={self.resources.gpu}")
        if self.resources.gpu > 1 and self.resources.gpu != int(self.resources.gpu):
            raise key_error(where, "resources.gpu", "fractional GPUs must be < 1 (or a whole number)")
        # searcher
        s = self.searcher
        if s.type not in _SEARCHER_REGISTRY:
            raise _bad_choice(where, "searcher.type", s.type, _SEARCHER_REGISTRY.list())
        if s.n_startup_trials < 0:
            raise key_error(where, "searcher.n_startup_trials", "must be >= 0")
        if s.storage is not None and "://" not in s.storage:
            raise key_error(where, "searcher.storage", f"must be an Optuna storage URL such as "
                                                  f"'sqlite:///study.db', got {s.storage!r}")
        _check_variation_options(where, s)
        if s.storage is not None and s.type != "tpe":
            raise key_error(where, "searcher.storage", "is only used by searcher type 'tpe'")
        # scheduler
        sc = self.scheduler
        if sc.type not in _SCHEDULER_REGISTRY:
            raise _bad_choice(where, "scheduler.type", sc.type, _SCHEDULER_REGISTRY.list())
        allowed = SCHEDULER_OPTIONS[sc.type]
        for k, v in sc.options.items():
            if k not in allowed:
                raise unknown_key(where, f"scheduler.options.{k}", list(allowed) or ["(none)"])
            if not check_type(v, allowed[k]):
                raise key_error(where, f"scheduler.options.{k}",
                           f"expected {type_name(allowed[k])}, got {v!r}")
        opts = dict(sc.options)
        if sc.type in ("asha", "median") and opts.get("grace_period", 1) < 1:
            raise key_error(where, "scheduler.options.grace_period", "must be >= 1")
        if "grace_period" in opts and opts["grace_period"] > self.max_epochs:
            raise key_error(where, "scheduler.options.grace_period",
                       f"must be <= max_epochs ({self.max_epochs})")
        if "reduction_factor" in opts and opts["reduction_factor"] <= 1:
            raise key_error(where, "scheduler.options.reduction_factor", "must be > 1")
        if "perturbation_interval" in opts and opts["perturbation_interval"] < 1:
            raise key_error(where, "scheduler.options.perturbation_interval", "must be >= 1")
        if "quantile_fraction" in opts and not 0 < opts["quantile_fraction"] <= 0.5:
            raise key_error(where, "scheduler.options.quantile_fraction", "must be in (0, 0.5]")
        if sc.type in ("pbt", "pb2"):
            if s.type != "random":
                raise key_error(where, "searcher.type",
                           f"scheduler {sc.type!r} draws its own population and cannot be "
                           f"combined with searcher {s.type!r}; use searcher type 'random'")
        if sc.type in ("pbt", "pb2") and "checkpoint_every" in self.data:
            every = self.data["checkpoint_every"]
            interval = opts.get("perturbation_interval", 2)
            if not isinstance(every, int) or every < 1 or interval % every:
                raise key_error(where, "data.checkpoint_every",
                           f"PBT exploits checkpoints every perturbation_interval={interval} "
                           f"epochs; checkpoint_every must divide it, got {every!r}")
        if sc.type == "pb2":
            missing = _pb2_missing_dependency()
            if missing is not None:
                raise key_error(where, "scheduler.type",
                           f"Ray's PB2 needs the {missing} package (pip install {missing}); "
                           f"use 'pbt' otherwise")
        space = None
        if check_space:
            space = self.load_space()
            if s.type == "grid":
                size = space.size()
                if size == math.inf:
                    raise key_error(where, "searcher.type", "grid search needs a discrete space; "
                                                       "this space has continuous parameters")
                if size > s.max_grid_size:
                    raise key_error(where, "searcher.type",
                               f"grid search over {size} configurations exceeds the limit "
                               f"{s.max_grid_size} (raise searcher.max_grid_size or use "
                               f"random/tpe)")
            if sc.type in ("pbt", "pb2"):
                from orchestrator.search import pbt_mutations

                if not pbt_mutations(space, pb2=sc.type == "pb2"):
                    what = ("numeric (float, int, or ordinal/categorical with numeric values) "
                            if sc.type == "pb2" else "")
                    raise key_error(where, "scheduler.type",
                               f"{sc.type} needs at least one mutable {what}(non-architecture, "
                               f"unconditional) parameter in the space; none found"
                               + ("; PB2 explores continuous ranges, so it cannot mutate "
                                  "non-numeric choices: use 'pbt' for those"
                                  if sc.type == "pb2" else ""))
        if check_trainer:
            trainer = self.resolve_trainer()
            if sc.type in ("pbt", "pb2") and getattr(trainer, "supports_checkpoint", True) is False:
                raise key_error(where, "trainer", f"{sc.type} exploits by restoring checkpoints, but "
                                             f"trainer {self.trainer!r} does not checkpoint "
                                             f"(supports_checkpoint = False)")
        return self

    def resolve_trainer(self):
        """The trainer callable; SpecError naming the ``trainer`` key if it cannot be found."""
        where = self.source or "experiment"
        name = self.trainer
        if self.network is not None:
            if name != "compose":
                raise key_error(where, "trainer", f"a network: section is trained by trainer "
                                                  f"'compose', got {name!r}")
            return self._network_trainer(where)
        if callable(name):
            return name
        if not isinstance(name, str):
            raise key_error(where, "trainer", f"expected a trainer name, 'module:object' or a "
                                              f"callable (such as a ModelSpace), got {name!r}")
        try:
            if ":" in name:
                mod_name, _, fn_name = name.partition(":")
                try:
                    mod = importlib.import_module(mod_name)
                except ImportError as e:
                    raise key_error(where, "trainer",
                               f"cannot import module {mod_name!r}: {e}") from None
                fn = getattr(mod, fn_name, None)
                if fn is None or not callable(fn):
                    names = [n for n in dir(mod)
                             if not n.startswith("_") and callable(getattr(mod, n))]
                    close = difflib.get_close_matches(fn_name, names, n=3)
                    hint = f"; did you mean {', '.join(close)}?" if close else ""
                    raise key_error(where, "trainer",
                               f"module {mod_name!r} has no callable {fn_name!r}{hint}")
                return fn
            from trainers import get_trainer

            return get_trainer(name)
        except SpecError:
            raise
        except (ArchtuneError, ValueError, KeyError, ImportError) as e:
            valid = list(_TRAINER_ALIASES)
            try:
                from trainers import list_trainers

                valid = list(list_trainers())
            except Exception:  # noqa: BLE001 - only for the hint
                pass
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise key_error(where, "trainer", f"unknown trainer {name!r} ({e}).{hint} Valid: "
                                         f"{', '.join(valid)} or 'module:function'") from None


def _check_variation_options(where: str, s: SearcherSpec) -> None:
    """The evolution/local options: objectives ``[metric, max|min]`` pairs, constraints
    ``"metric <= value"``, sizes and probabilities in range."""
    for i, obj in enumerate(s.objectives):
        if not (isinstance(obj, (list, tuple)) and len(obj) == 2 and isinstance(obj[0], str)
                and obj[1] in ("max", "min")):
            raise key_error(where, f"searcher.objectives.{i}", f"expected [metric, max|min], "
                                                               f"got {obj!r}")
    for i, text in enumerate(s.constraints):
        from orchestrator.evolution import parse_constraint

        try:
            parse_constraint(text)
        except SpecError as e:
            raise key_error(where, f"searcher.constraints.{i}", str(e)) from None
    if s.population_size < 2:
        raise key_error(where, "searcher.population_size", "must be >= 2")
    if not 1 <= s.sample_size <= s.population_size:
        raise key_error(where, "searcher.sample_size", f"must be in 1..population_size "
                                                       f"({s.population_size})")
    for key in ("mutation_prob", "crossover_prob"):
        if not 0.0 <= getattr(s, key) <= 1.0:
            raise key_error(where, f"searcher.{key}", "must be in [0, 1]")
    if s.max_steps < 1:
        raise key_error(where, "searcher.max_steps", "must be >= 1")


def object_reference(obj: Any) -> str:
    """``"module:name"`` of a module-level object (how a Python-API trainer is saved), or a
    placeholder naming its type when it is bound to no module-level name."""
    import sys

    modules = [getattr(obj, "__module__", None),
               getattr(getattr(obj, "model_cls", None), "__module__", None)]
    for name in modules:
        mod = sys.modules.get(name) if isinstance(name, str) else None
        for attr, value in (vars(mod).items() if mod is not None else ()):
            if value is obj:
                return f"{name}:{attr}"
    qual = getattr(obj, "__qualname__", "")
    if isinstance(modules[0], str) and qual and "<" not in qual:
        return f"{modules[0]}:{qual}"
    return f"<python object {type(obj).__name__}, not saved>"


def _bad_choice(where, key, value, valid) -> SpecError:
    close = difflib.get_close_matches(str(value), list(valid), n=2, cutoff=0.4)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return key_error(where, key, f"{value!r} is not valid{hint} Valid: {', '.join(valid)}")


def _sub_from_dict(cls, d: Mapping[str, Any], prefix: str, where: str | None):
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in d.items():
        if key not in valid:
            if cls is SchedulerSpec:
                extra[key] = value  # flat scheduler options are accepted too
                continue
            raise unknown_key(where, f"{prefix}.{key}", valid)
        tp = cls._TYPES[key]
        if not check_type(value, tp):
            raise key_error(where, f"{prefix}.{key}", f"expected {type_name(tp)}, got {value!r} "
                                                 f"({type(value).__name__})")
        if tp is float:
            value = float(value)
        kwargs[key] = value
    if cls is SchedulerSpec:
        opts = dict(kwargs.get("options") or {})
        typ = kwargs.get("type", "fifo")
        for k, v in extra.items():
            if k not in SCHEDULER_OPTIONS.get(typ, {}):
                raise unknown_key(where, f"{prefix}.{k}",
                               valid + list(SCHEDULER_OPTIONS.get(typ, {})))
            opts[k] = v
        kwargs["options"] = opts
    return cls(**kwargs)


def _plain(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def load_experiment(spec: "str | Path | Mapping[str, Any] | Experiment") -> Experiment:
    """Accept an Experiment, a mapping, a YAML path or YAML text."""
    if isinstance(spec, Experiment):
        return spec
    if isinstance(spec, Mapping):
        return Experiment.from_dict(spec)
    return Experiment.from_yaml(spec)
