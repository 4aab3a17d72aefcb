"""The searcher and scheduler registries (Ray-free: validating a file imports neither Ray nor
Optuna; entries are ``"module:function"`` targets imported when an experiment runs).

A searcher factory is ``fn(exp, space) -> ray.tune.search.Searcher``; a scheduler factory is
``fn(exp, space) -> ray.tune.schedulers.TrialScheduler | None`` (``None``: Ray's FIFO). Declared
metadata:

- searchers: ``model_based`` (learns from results), ``needs_discrete`` (grid);
- schedulers: ``population`` (PBT-style: no searcher, draws its population itself and needs
  checkpoints), ``pauses`` (pauses and resumes trials, so trainers must checkpoint),
  ``early_stopping`` (stops trials before ``max_epochs``), ``options`` (the scheduler's own
  knobs: name -> :class:`~orchestrator.validation.Option`, checked when a spec is built;
  ``max_t`` is always the experiment's ``max_epochs``).

Register your own::

    from orchestrator.registries import SEARCHERS
    SEARCHERS.register("mine", "mypkg.search:make_mine", model_based=True)
"""
from __future__ import annotations

from orchestrator.errors import SpecError
from orchestrator.validation import Option
from spaces.registry import Registry

__all__ = ["SCHEDULERS", "SEARCHERS"]

SEARCHERS: Registry = Registry("searcher", error=SpecError)
SCHEDULERS: Registry = Registry("scheduler", error=SpecError)

SEARCHERS.register("random", "orchestrator.search:make_random", model_based=False)
SEARCHERS.register("grid", "orchestrator.search:make_grid", model_based=False,
                   needs_discrete=True)
SEARCHERS.register("tpe", "orchestrator.search:make_tpe", model_based=True)
SEARCHERS.register("quick", "orchestrator.quick:make_quick", model_based=True)
SEARCHERS.register("evolution", "orchestrator.evolution:make_evolution", model_based=True)
SEARCHERS.register("local", "orchestrator.evolution:make_local", model_based=True)

_NUM = (int, float)
_INTERVAL = Option(int, low=1)
_QUANTILE = Option(float, low=0, high=0.5, low_open=True)
SCHEDULERS.register("fifo", "orchestrator.search:make_fifo", early_stopping=False, options={})
SCHEDULERS.register("asha", "orchestrator.search:make_asha", early_stopping=True, options={
    "grace_period": Option(int, low=1), "reduction_factor": Option(_NUM, low=1, low_open=True),
    "brackets": Option(int, low=1)})
SCHEDULERS.register("hyperband", "orchestrator.search:make_hyperband", early_stopping=True,
                    pauses=True,
                    options={"reduction_factor": Option(_NUM, low=1, low_open=True)})
SCHEDULERS.register("median", "orchestrator.search:make_median", early_stopping=True, options={
    "grace_period": Option(_NUM, low=1), "min_samples_required": Option(int, low=1),
    "hard_stop": Option(bool)})
SCHEDULERS.register("pbt", "orchestrator.search:make_pbt", population=True, options={
    "perturbation_interval": _INTERVAL, "burn_in_period": Option(int, low=0),
    "quantile_fraction": _QUANTILE, "resample_probability": Option(float, low=0, high=1),
    "perturbation_factors": Option(list), "synch": Option(bool)})
SCHEDULERS.register("pb2", "orchestrator.search:make_pb2", population=True, options={
    # Ray's PB2 has no burn_in_period
    "perturbation_interval": _INTERVAL, "quantile_fraction": _QUANTILE, "synch": Option(bool)})
