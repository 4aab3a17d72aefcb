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

Validation happens in three places, cheapest first, like Optuna's distributions:

1. each spec object checks its own fields when it is built (the ``_OPTIONS`` tables: type,
   range, choices; a sub-spec's own rules such as "storage needs the tpe searcher");
2. :meth:`Experiment.validate` runs the cross-field rules (:data:`_RULES`, small named checks);
3. then what needs the space, the trainer or the data section (:data:`_SPACE_RULES`,
   :data:`_TRAINER_RULES`, :func:`_check_data`).

Every unknown key and every invalid value is one :class:`SpecError` that names the file, the
dotted key and what would be valid. Validating a file imports neither Ray nor Optuna.
"""
from __future__ import annotations

import ast
import dataclasses
import difflib
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orchestrator.constraints import parse_constraint
from orchestrator.errors import SpecError
from orchestrator.mutations import pbt_mutations
from orchestrator.registries import SCHEDULERS, SEARCHERS
from orchestrator.validation import (Option, check_keys, check_options, key_error, located,
                                     read_yaml, require_mapping, spec_to_dict, unknown_key)
from spaces.errors import ArchtuneError

__all__ = [
    "Experiment",
    "ResourcesSpec",
    "SchedulerSpec",
    "SearcherSpec",
    "SpecError",
    "load_experiment",
    "object_reference",
    "scheduler_options",
]

_NONE = type(None)
# metric -> the only direction it makes sense to optimise it in
_KNOWN_METRIC_MODES = {"val_acc": "max", "val_loss": "min", "train_loss": "min",
                       "map": "max", "map_50": "max", "map_75": "max", "mar_100": "max",
                       "miou": "max", "pixel_acc": "max", "latency_ms": "min"}
_PIP_NAMES = {"sklearn": "scikit-learn"}


def scheduler_options(scheduler_type: str) -> Mapping[str, Option]:
    """The options a registered scheduler accepts (its ``options`` registry metadata)."""
    return SCHEDULERS.meta(scheduler_type).get("options", {})


def _registered(registry: Any, key: str, value: str) -> None:
    if value not in registry:
        close = difflib.get_close_matches(str(value), registry.list(), n=2, cutoff=0.4)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise key_error(None, key, f"{value!r} is not valid{hint} Valid: "
                                   f"{', '.join(registry.list())}")


# ---------------------------------------------------------------------------------- sub-specs
@dataclass(frozen=True, kw_only=True)
class SearcherSpec:
    """How configurations are proposed (``type``: a name in
    :data:`orchestrator.registries.SEARCHERS`). ``random``: the space's seeded sampler,
    duplicates reused; ``grid``: every distinct valid config, at most ``max_grid_size``;
    ``tpe``: Optuna TPE, define-by-run (trials stopped by a scheduler are told as PRUNED;
    ``storage`` an Optuna storage URL such as ``sqlite:///study.db``); ``quick``: warm start
    then a learning-curve model; ``evolution``/``local``: see :mod:`orchestrator.evolution`
    (``objectives`` ``[[metric, max|min], ...]``, two or more: NSGA-II; ``constraints``
    ``["params <= 2e5", ...]``).

    Raises:
        SpecError: naming ``searcher.<field>`` for an invalid value.
    """

    type: str = "quick"
    seed: int | None = None
    n_startup_trials: int = 10
    storage: str | None = None
    study_name: str | None = None
    multivariate: bool = False
    max_grid_size: int = 10_000
    population_size: int = 20
    sample_size: int = 5
    mutation_prob: float = 0.2
    crossover_prob: float = 0.0
    objectives: tuple = ()
    constraints: tuple = ()
    max_steps: int = 50

    _OPTIONS = {
        "type": Option(str), "seed": Option((int, _NONE)), "n_startup_trials": Option(int, low=0),
        "storage": Option((str, _NONE)), "study_name": Option((str, _NONE)),
        "multivariate": Option(bool), "max_grid_size": Option(int, low=1),
        "population_size": Option(int, low=2), "sample_size": Option(int, low=1),
        "mutation_prob": Option(float, low=0, high=1), "crossover_prob": Option(float, low=0, high=1),
        "objectives": Option((list, tuple)), "constraints": Option((list, tuple)),
        "max_steps": Option(int, low=1),
    }

    def __post_init__(self) -> None:
        for name in ("objectives", "constraints"):
            value = getattr(self, name)
            if isinstance(value, (list, tuple)):
                object.__setattr__(self, name, tuple(
                    tuple(v) if isinstance(v, list) else v for v in value))
        check_options(self, self._OPTIONS, "searcher.")
        _registered(SEARCHERS, "searcher.type", self.type)
        if self.storage is not None:
            if "://" not in self.storage:
                raise key_error(None, "searcher.storage", f"must be an Optuna storage URL such "
                                f"as 'sqlite:///study.db', got {self.storage!r}")
            if self.type != "tpe":
                raise key_error(None, "searcher.storage", "is only used by searcher type 'tpe'")
        if self.sample_size > self.population_size:
            raise key_error(None, "searcher.sample_size",
                            f"must be in 1..population_size ({self.population_size})")
        for i, obj in enumerate(self.objectives):
            if not (isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str)
                    and obj[1] in ("max", "min")):
                raise key_error(None, f"searcher.objectives.{i}",
                                f"expected [metric, max|min], got {obj!r}")
        for i, text in enumerate(self.constraints):
            try:
                parse_constraint(text)
            except SpecError as e:
                raise key_error(None, f"searcher.constraints.{i}", str(e)) from None


@dataclass(frozen=True, kw_only=True)
class SchedulerSpec:
    """When trials stop or are perturbed (``type``: a name in
    :data:`orchestrator.registries.SCHEDULERS`). ``options`` holds the scheduler's own knobs
    (:func:`scheduler_options`); ``max_t`` is always the experiment's ``max_epochs``.

    Raises:
        SpecError: naming ``scheduler.type`` or ``scheduler.options.<name>``.
    """

    type: str = "fifo"
    options: Mapping[str, Any] = field(default_factory=dict)

    _OPTIONS = {"type": Option(str), "options": Option((dict, Mapping))}

    def __post_init__(self) -> None:
        check_options(self, self._OPTIONS, "scheduler.")
        _registered(SCHEDULERS, "scheduler.type", self.type)
        allowed = scheduler_options(self.type)
        for k, v in self.options.items():
            if k not in allowed:
                raise unknown_key(None, f"scheduler.options.{k}", list(allowed) or ["(none)"])
            allowed[k].check(f"scheduler.options.{k}", v)


@dataclass(frozen=True, kw_only=True)
class ResourcesSpec:
    """Resources per trial; ``gpu`` may be fractional (0.5 = two trials share a GPU) below 1,
    a whole number above.

    Raises:
        SpecError: naming ``resources.cpu`` or ``resources.gpu``.
    """

    cpu: float = 1.0
    gpu: float = 0.0

    _OPTIONS = {"cpu": Option(float, low=0, low_open=True), "gpu": Option(float, low=0)}

    def __post_init__(self) -> None:
        check_options(self, self._OPTIONS, "resources.")
        if self.gpu > 1 and self.gpu != int(self.gpu):
            raise key_error(None, "resources.gpu",
                            f"fractional GPUs must be < 1 (or a whole number), got {self.gpu}")
        object.__setattr__(self, "cpu", float(self.cpu))
        object.__setattr__(self, "gpu", float(self.gpu))


_SUB_SPECS = {"searcher": SearcherSpec, "scheduler": SchedulerSpec, "resources": ResourcesSpec}


def _sub_from_dict(cls: type, d: Mapping[str, Any], prefix: str) -> Any:
    """A sub-spec from its YAML mapping; flat scheduler options (``scheduler: {type: asha,
    grace_period: 1}``) are moved under ``options``."""
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in d.items():
        if key in valid:
            kwargs[key] = value
        elif cls is SchedulerSpec:
            extra[key] = value
        else:
            raise unknown_key(None, f"{prefix}.{key}", valid)
    if extra:
        typ = kwargs.get("type", "fifo")
        allowed = list(scheduler_options(typ)) if typ in SCHEDULERS else []
        for k in extra:
            if k not in allowed:
                raise unknown_key(None, f"{prefix}.{k}", valid + allowed)
        kwargs["options"] = {**dict(kwargs.get("options") or {}), **extra}
    return cls(**kwargs)


# ---------------------------------------------------------------------------------- experiment
def _check_name(name: str) -> None:
    if not name or any(c in name for c in "/\\") or name.strip() != name:
        raise key_error(None, "name", f"must be a non-empty folder name without '/', got {name!r}")


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """One HPO/NAS experiment. Build it in Python (``Experiment(name=..., space=...)``) or
    from YAML (:meth:`from_yaml`). Construction checks every field (types, ranges, the
    sub-specs; ``searcher``/``scheduler``/``resources`` may be given as mappings);
    :meth:`validate` checks everything else that can be checked before Ray starts (the space
    loads, fixed values are in it, the trainer resolves, the data section is valid, ...).

    Raises:
        SpecError: naming the file (``source``), the dotted key and what would be valid.
    """

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
    # pyarrow.fs.S3FileSystem options for an s3:// storage (e.g. a MinIO endpoint_override)
    storage_filesystem: Mapping[str, Any] | None = None
    max_failures: int = 0
    seed: int = 0
    # where the spec came from (not part of the YAML); relative paths resolve against it
    source: str | None = field(default=None, compare=False, repr=False)

    # YAML types of every key; ranges of the scalar ones (checked on construction)
    _OPTIONS = {
        "name": Option(str), "space": Option((str, dict)), "fixed": Option(dict),
        "trainer": Option(str), "network": Option((str, dict)), "data": Option(dict),
        "metric": Option(str), "mode": Option(str, choices=("min", "max")),
        "searcher": Option(dict), "scheduler": Option(dict), "resources": Option(dict),
        "num_samples": Option(int, low=1), "max_concurrent": Option((int, _NONE), low=1),
        "max_epochs": Option(int, low=1),
        "time_budget_s": Option((float, _NONE), low=0, low_open=True),
        "storage": Option(str), "max_failures": Option(int, low=-1), "seed": Option(int),
        "storage_filesystem": Option((dict, _NONE)),
    }
    _SCALARS = ("name", "metric", "mode", "num_samples", "max_concurrent", "max_epochs",
                "time_budget_s", "storage", "max_failures", "seed")

    def __post_init__(self) -> None:
        with located(self.source):
            for key in self._SCALARS:
                self._OPTIONS[key].check(key, getattr(self, key))
            _check_name(self.name)
            if not self.metric:
                raise key_error(None, "metric", "must be a non-empty metric name reported by "
                                                "the trainer")
            for key in ("fixed", "data"):
                if not isinstance(getattr(self, key), Mapping):
                    raise key_error(None, key, f"expected a mapping, got {getattr(self, key)!r}")
                object.__setattr__(self, key, dict(getattr(self, key)))
            for key, cls in _SUB_SPECS.items():
                value = getattr(self, key)
                if isinstance(value, Mapping):
                    object.__setattr__(self, key, _sub_from_dict(cls, value, key))
                elif not isinstance(value, cls):
                    raise key_error(None, key, f"expected a {cls.__name__} or a mapping, "
                                               f"got {value!r}")
            if self.time_budget_s is not None:
                object.__setattr__(self, "time_budget_s", float(self.time_budget_s))
            if self.storage_filesystem is not None:
                from orchestrator.storage import check_filesystem_options

                problem = check_filesystem_options(self.storage_filesystem, self.storage)
                if problem:
                    raise key_error(None, "storage_filesystem", problem)
                object.__setattr__(self, "storage_filesystem", dict(self.storage_filesystem))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str | Path | None = None,
                  validate: bool = True) -> "Experiment":
        """Build from a plain mapping (as read from YAML): unknown keys and wrong types are
        rejected, then the fields are checked; ``validate`` also runs :meth:`validate`."""
        where = str(source) if source is not None else None
        require_mapping(d, where, "experiment")
        with located(where):
            check_keys(d, cls, {k: o.type for k, o in cls._OPTIONS.items()})
            kwargs = dict(d)
            if "network" in kwargs:
                kwargs.setdefault("trainer", "compose")
            needs_space = "network" not in kwargs and ":" not in str(kwargs.get("trainer", ""))
            for required in ("name", "space") if needs_space else ("name",):
                if required not in kwargs:
                    raise key_error(None, required, "is required")
        exp = cls(**kwargs, source=where)
        return exp.validate() if validate else exp

    @classmethod
    def from_yaml(cls, path_or_text: str | Path, *, validate: bool = True) -> "Experiment":
        """Read an experiment file (a path) or YAML text (a key given twice is an error)."""
        data, source = read_yaml(path_or_text, "experiment")
        return cls.from_dict(data, source=source, validate=validate)

    def to_dict(self) -> dict[str, Any]:
        """The experiment as plain YAML/JSON-friendly values (sub-specs as mappings)."""
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
        """A copy with ``changes`` applied (fields checked again)."""
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

        with located(self.source or "experiment"):
            spec = self.space
            if isinstance(spec, str):
                spec = self._resolve_path(spec) or spec
            if spec is None:
                spec = self._derived_space()
            try:
                space = load_space(spec)
            except (ArchtuneError, KeyError, ValueError, OSError) as e:
                raise key_error(None, "space", f"cannot load space {self.space!r}: {e}") from None
            if not self.fixed:
                return space
            for k in self.fixed:
                if k not in space:
                    raise unknown_key(None, f"fixed.{k}", list(space.params))
            try:
                return space.with_fixed(dict(self.fixed))
            except (ArchtuneError, ValueError) as e:
                raise key_error(None, "fixed", f"value not in the space: {e}") from None

    def _derived_space(self):
        """The space of ``network`` or of a trainer that has one (a ``ModelSpace``)."""
        if self.network is not None:
            return self._network_trainer().space
        space = getattr(self.resolve_trainer(), "space", None)
        if space is None:
            raise key_error(None, "space", f"is required: trainer {self.trainer!r} has no space "
                                           "of its own (give a library name, a file or a dict)")
        return space

    def _network_trainer(self):
        from trainers.compose.trainer import NetworkTrainer

        net = self.network
        if isinstance(net, str):
            net = self._resolve_path(net) or net
        try:
            return NetworkTrainer(net)
        except ArchtuneError as e:
            raise key_error(None, "network", str(e)) from None

    def filesystem(self) -> Any:
        """The ``pyarrow.fs`` filesystem ``storage_filesystem`` describes (``None``: the one
        the storage URI or path implies)."""
        from orchestrator.storage import filesystem_from_options

        return filesystem_from_options(self.storage_filesystem)

    def storage_root(self) -> str:
        """Absolute storage path (URIs are returned unchanged)."""
        if "://" in self.storage:
            return self.storage
        p = Path(self.storage).expanduser()
        if not p.is_absolute():
            p = Path.cwd() / p
        return str(p.resolve())

    def experiment_dir(self) -> str:
        """``<storage_root>/<name>``."""
        return self.storage_root().rstrip("/") + "/" + self.name

    # ------------------------------------------------------------------ validation
    def validate(self, *, check_space: bool = True, check_trainer: bool = True) -> "Experiment":
        """Run the cross-field rules, then (``check_space``) load the space and check it
        against the searcher and scheduler, then (``check_trainer``) resolve the trainer and
        check its capabilities and the ``data`` section. Returns ``self``."""
        with located(self.source or "experiment"):
            for rule in _RULES:
                rule(self)
            if check_space:
                space = self.load_space()
                for space_rule in _SPACE_RULES:
                    space_rule(self, space)
            if check_trainer:
                trainer = self.resolve_trainer()
                for trainer_rule in _TRAINER_RULES:
                    trainer_rule(self, trainer)
        return self

    def resolve_trainer(self):
        """The trainer callable; SpecError naming the ``trainer`` key if it cannot be found."""
        with located(self.source or "experiment"):
            name = self.trainer
            if self.network is not None:
                if name != "compose":
                    raise key_error(None, "trainer", f"a network: section is trained by trainer "
                                                     f"'compose', got {name!r}")
                return self._network_trainer()
            if callable(name):
                return name
            if not isinstance(name, str):
                raise key_error(None, "trainer", f"expected a trainer name, 'module:object' or "
                                                 f"a callable (such as a ModelSpace), got {name!r}")
            if ":" in name:
                return _import_trainer(name)
            from trainers import get_trainer

            try:
                return get_trainer(name)
            except ArchtuneError as e:
                raise key_error(None, "trainer", f"{e}; or give 'module:function'") from None


def _import_trainer(reference: str) -> Callable:
    """``"module:function"`` imported, with the closest callables named when it is missing."""
    mod_name, _, fn_name = reference.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError as e:
        raise key_error(None, "trainer", f"cannot import module {mod_name!r}: {e}") from None
    fn = getattr(mod, fn_name, None)
    if fn is None or not callable(fn):
        names = [n for n in dir(mod) if not n.startswith("_") and callable(getattr(mod, n))]
        close = difflib.get_close_matches(fn_name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise key_error(None, "trainer", f"module {mod_name!r} has no callable {fn_name!r}{hint}")
    return fn


# ---------------------------------------------------------------------------------- rules
def _population(exp: Experiment) -> bool:
    return bool(SCHEDULERS.meta(exp.scheduler.type).get("population"))


def _check_metric_direction(exp: Experiment) -> None:
    want = _KNOWN_METRIC_MODES.get(exp.metric)
    if want and want != exp.mode:
        raise key_error(None, "mode", f"metric {exp.metric!r} should be optimised with mode "
                                      f"{want!r}, not {exp.mode!r}")


def _check_grace_period(exp: Experiment) -> None:
    grace = exp.scheduler.options.get("grace_period")
    if grace is not None and grace > exp.max_epochs:
        raise key_error(None, "scheduler.options.grace_period",
                        f"must be <= max_epochs ({exp.max_epochs}), got {grace}")


def _check_population_searcher(exp: Experiment) -> None:
    if _population(exp) and exp.searcher.type != "random":
        raise key_error(None, "searcher.type",
                        f"scheduler {exp.scheduler.type!r} draws its own population and cannot "
                        f"be combined with searcher {exp.searcher.type!r}; use searcher type "
                        f"'random'")


def _check_checkpoint_every(exp: Experiment) -> None:
    if not _population(exp) or "checkpoint_every" not in exp.data:
        return
    every = exp.data["checkpoint_every"]
    interval = exp.scheduler.options.get("perturbation_interval", 2)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1 or interval % every:
        raise key_error(None, "data.checkpoint_every",
                        f"PBT exploits checkpoints every perturbation_interval={interval} "
                        f"epochs; checkpoint_every must divide it, got {every!r}")


def _pb2_missing_dependency() -> str | None:
    """The pip name of a library the installed Ray's PB2 needs (its ``pb2_utils`` module's
    imports) that is not installed, or ``None``. Reads Ray's source; imports nothing."""
    ray_spec = importlib.util.find_spec("ray")
    if ray_spec is None or not ray_spec.submodule_search_locations:
        return "ray[tune]"
    utils = Path(list(ray_spec.submodule_search_locations)[0]) / "tune/schedulers/pb2_utils.py"
    if not utils.is_file():
        return None
    for node in ast.parse(utils.read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module
                 and not node.level else [])
        for top in {n.split(".")[0] for n in names} - {"ray"}:
            if top not in sys.stdlib_module_names and importlib.util.find_spec(top) is None:
                return _PIP_NAMES.get(top, top)
    return None


def _check_pb2_dependency(exp: Experiment) -> None:
    if exp.scheduler.type == "pb2":
        missing = _pb2_missing_dependency()
        if missing is not None:
            raise key_error(None, "scheduler.type", f"Ray's PB2 needs the {missing} package "
                                                    f"(pip install {missing}); use 'pbt' otherwise")


_RULES: tuple[Callable[[Experiment], None], ...] = (
    _check_metric_direction, _check_grace_period, _check_population_searcher,
    _check_checkpoint_every, _check_pb2_dependency,
)


def _check_grid_size(exp: Experiment, space: Any) -> None:
    if not SEARCHERS.meta(exp.searcher.type).get("needs_discrete"):
        return
    size = space.size()
    if size == math.inf:
        raise key_error(None, "searcher.type", "grid search needs a discrete space; this space "
                                               "has continuous parameters")
    if size > exp.searcher.max_grid_size:
        raise key_error(None, "searcher.type",
                        f"grid search over {size} configurations exceeds the limit "
                        f"{exp.searcher.max_grid_size} (raise searcher.max_grid_size or use "
                        f"random/tpe)")


def _check_mutable(exp: Experiment, space: Any) -> None:
    if not _population(exp):
        return
    pb2 = exp.scheduler.type == "pb2"
    if pbt_mutations(space, pb2=pb2):
        return
    what = "numeric (float, int, or ordinal/categorical with numeric values) " if pb2 else ""
    hint = ("; PB2 explores continuous ranges, so it cannot mutate non-numeric choices: use "
            "'pbt' for those" if pb2 else "")
    raise key_error(None, "scheduler.type",
                    f"{exp.scheduler.type} needs at least one mutable {what}(non-architecture, "
                    f"unconditional) parameter in the space; none found{hint}")


_SPACE_RULES: tuple[Callable[[Experiment, Any], None], ...] = (_check_grid_size, _check_mutable)


def _needs_checkpoints(exp: Experiment) -> str | None:
    """Why the scheduler needs a checkpointing trainer, or ``None``."""
    meta = SCHEDULERS.meta(exp.scheduler.type)
    if meta.get("population"):
        return "exploits by restoring checkpoints"
    if meta.get("pauses") or (exp.scheduler.type == "median"
                              and exp.scheduler.options.get("hard_stop") is False):
        return "pauses trials and resumes them from checkpoints"
    return None


def _check_trainer_checkpoints(exp: Experiment, trainer: Any) -> None:
    from trainers import trainer_meta

    why = _needs_checkpoints(exp)
    if why is None:
        return
    named = isinstance(exp.trainer, str) and exp.network is None
    if not trainer_meta(exp.trainer if named else trainer).get("checkpoints", True):
        raise key_error(None, "trainer", f"{exp.scheduler.type} {why}, but trainer "
                                         f"{exp.trainer!r} does not checkpoint (it declares "
                                         f"checkpoints = False)")


def _check_data(exp: Experiment, trainer: Any) -> None:
    """The ``data`` section, checked by the trainer's own declared knobs (dataset names,
    sizes, ``data_dir`` and ``pretrained`` paths, relative ones against the spec's folder)."""
    from trainers.config import validate_data

    name = "compose" if exp.network is not None else exp.trainer
    try:
        validate_data(exp.data, name if isinstance(name, str) else trainer,
                      root=Path(exp.source).parent if exp.source else None)
    except ArchtuneError as e:
        raise key_error(None, _data_key(exp.data, str(e)), str(e)) from None


def _data_key(data: Mapping[str, Any], message: str) -> str:
    """``data.<key>`` when the trainer's message blames exactly one key of ``data``
    (its problems read ``<key>: <rule>``), else ``data``."""
    blamed = [k for k in data if re.search(rf"(^|[\s;:'(]){re.escape(str(k))}['\s]*:", message)]
    return f"data.{blamed[0]}" if len(blamed) == 1 else "data"


def _check_finetune_trials(exp: Experiment, trainer: Any) -> None:
    """finetune: every model the space can draw runs at ``data.image_size`` and
    ``cotuning-reg > 0`` has a pretrained source (trainers.model_fit.check_finetune_experiment)."""
    if exp.trainer != "finetune" or exp.network is not None:
        return
    from trainers.model_fit import check_finetune_experiment

    try:
        check_finetune_experiment(exp.data, exp.load_space())
    except ArchtuneError as e:
        key = "space" if str(e).startswith("cotuning-reg") else "data.image_size"
        raise key_error(None, key, str(e)) from None


_TRAINER_RULES: tuple[Callable[[Experiment, Any], None], ...] = (
    _check_trainer_checkpoints, _check_data, _check_finetune_trials,
)


# ---------------------------------------------------------------------------------- helpers
def object_reference(obj: Any) -> str:
    """``"module:name"`` of a module-level object (how a Python-API trainer is saved), or a
    placeholder naming its type when it is bound to no module-level name."""
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
