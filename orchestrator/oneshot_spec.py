"""The one-shot sections of a pipeline file (``stages: [supernet, subnet_search, final]``)
and their validation; :mod:`orchestrator.oneshot` runs them.

A one-shot pipeline::

    name: oneshot_digits
    space: trainers.oneshot.mnasnet:mnasnet_supernet   # "module:factory" of the supernet
    trainer: supernet
    data: {dataset: digits, image_size: 16, supernet_args: {...}}  # one-shot trainer settings
    max_epochs: 10                       # final training length
    stages: [supernet, subnet_search, final]
    supernet: {epochs: 30, strategy: spos}
    subnet_search: {evaluations: 300, population_size: 30, constraints: ["params <= 6e4"]}
    final: {top_n: 2, init: scratch}

The search space is the supernet's mutables (:func:`trainers.oneshot.search_space`); every
setting is checked before Ray starts (errors name the file and the dotted key).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from orchestrator.errors import SpecError

from .validation import key_error

__all__ = ["ONESHOT_STAGES", "SupernetStage", "SubnetSearchStage", "FINAL_INITS",
           "is_oneshot", "validate_oneshot"]

ONESHOT_STAGES = ("supernet", "subnet_search", "final")
FINAL_INITS = ("scratch", "inherit")
_NONE = type(None)


@dataclass(frozen=True, kw_only=True)
class SupernetStage:
    """One trial trains the supernet (``trainer: supernet``) for ``epochs`` epochs with
    ``strategy`` (``spos`` or ``darts``); ``settings`` override the pipeline's ``data`` for it;
    ``gpu`` is the trial's GPU share (``None``: 1 when CUDA is present, else 0)."""

    epochs: int = 20
    strategy: str = "spos"
    settings: Mapping[str, Any] = field(default_factory=dict)
    gpu: float | None = None

    _TYPES = {"epochs": int, "strategy": str, "settings": dict, "gpu": (float, _NONE)}


@dataclass(frozen=True, kw_only=True)
class SubnetSearchStage:
    """Evolutionary (``evolution``: the ``evolution`` searcher's regularized evolution, or
    NSGA-II ranking under ``constraints``) or ``random`` search over the supernet's space;
    every evaluation scores a subnet with inherited weights (BatchNorm recalibrated), in Ray
    tasks of ``batch_size`` subnets on up to ``workers`` workers, reading the supernet
    checkpoint from the experiment's storage. ``constraints``: ``"params <= 6e4"``,
    ``"flops <= 2e6"``, ``"latency_ms <= 1.5"`` (latency is measured only when constrained)."""

    method: str = "evolution"
    evaluations: int = 200
    population_size: int = 20
    sample_size: int = 5
    mutation_prob: float = 0.3
    crossover_prob: float = 0.0
    constraints: tuple[str, ...] = ()
    workers: int = 2
    batch_size: int = 25
    seed: int = 0

    _TYPES = {"method": str, "evaluations": int, "population_size": int, "sample_size": int,
              "mutation_prob": float, "crossover_prob": float, "constraints": list,
              "workers": int, "batch_size": int, "seed": int}


def is_oneshot(stages: Any) -> bool:
    """True for a pipeline whose first stage is ``supernet``."""
    return bool(stages) and list(stages)[0] == "supernet"


def validate_oneshot(pipe: Any, where: str) -> None:
    """Check a one-shot pipeline (stage order, sections, the supernet and its space, the
    trainer settings) before anything runs."""
    stages = list(pipe.stages)
    if stages != list(ONESHOT_STAGES[:len(stages)]):
        raise key_error(where, "stages", f"a one-shot pipeline lists stages in the order "
                                         f"{list(ONESHOT_STAGES)}, each needing the one before "
                                         f"it, got {stages}")
    if pipe.trainer != "supernet":
        raise key_error(where, "trainer", f"a one-shot pipeline trains with trainer "
                                          f"'supernet', got {pipe.trainer!r}")
    s = pipe.supernet
    if s.epochs < 1:
        raise key_error(where, "supernet.epochs", f"must be >= 1, got {s.epochs}")
    if s.strategy not in ("spos", "darts"):
        raise key_error(where, "supernet.strategy", f"must be 'spos' or 'darts', got "
                                                    f"{s.strategy!r}")
    _validate_search(pipe.subnet_search, where)
    if pipe.final.top_n < 1:
        raise key_error(where, "final.top_n", f"must be >= 1, got {pipe.final.top_n}")
    if pipe.final.init not in FINAL_INITS:
        raise key_error(where, "final.init", f"must be one of {list(FINAL_INITS)}, got "
                                             f"{pipe.final.init!r}")
    load_supernet_space(pipe, where)


def _validate_search(q: SubnetSearchStage, where: str) -> None:
    from .constraints import parse_constraint

    if q.method not in ("evolution", "random"):
        raise key_error(where, "subnet_search.method", f"must be 'evolution' or 'random', got "
                                                       f"{q.method!r}")
    for key, low in (("evaluations", 1), ("population_size", 2), ("workers", 1),
                     ("batch_size", 1)):
        if getattr(q, key) < low:
            raise key_error(where, f"subnet_search.{key}", f"must be >= {low}, got "
                                                           f"{getattr(q, key)}")
    if not 1 <= q.sample_size <= q.population_size:
        raise key_error(where, "subnet_search.sample_size", f"must be in 1..population_size "
                                                            f"({q.population_size})")
    for key in ("mutation_prob", "crossover_prob"):
        if not 0.0 <= getattr(q, key) <= 1.0:
            raise key_error(where, f"subnet_search.{key}", "must be in [0, 1]")
    for i, c in enumerate(q.constraints):
        try:
            name, _, _ = parse_constraint(c)
        except SpecError as e:
            raise key_error(where, f"subnet_search.constraints[{i}]", str(e)) from None
        if name not in ("params", "flops", "latency_ms"):
            raise key_error(where, f"subnet_search.constraints[{i}]",
                            f"constrains {name!r}; valid: params, flops, latency_ms")


def trainer_settings(pipe: Any, **overrides: Any) -> dict[str, Any]:
    """The one-shot trainer settings of a stage: ``data`` + the supernet factory + overrides."""
    return {**dict(pipe.data), "supernet": pipe.space, **overrides}


def load_supernet_space(pipe: Any, where: str):
    """Build the supernet named by ``space`` and compile its mutables (SpecError on failure)."""
    from spaces.errors import ArchtuneError
    from trainers.oneshot.settings import OneShotConfig

    if not isinstance(pipe.space, str) or ":" not in pipe.space:
        raise key_error(where, "space", f"a one-shot pipeline names its supernet as "
                                        f"'module:factory', got {pipe.space!r}")
    settings = trainer_settings(pipe, **dict(pipe.supernet.settings))
    try:
        OneShotConfig.from_dict(settings)
    except ArchtuneError as e:
        raise key_error(where, "data", str(e)) from None
    from trainers.oneshot import search_space
    from trainers.oneshot.train import build_supernet

    try:
        return search_space(build_supernet(pipe.space, settings.get("supernet_args")))
    except (ArchtuneError, TypeError, ValueError) as e:
        raise key_error(where, "space", f"cannot build supernet {pipe.space!r}: {e}") from None
