"""Compile a SearchSpace to an Optuna define-by-run function.

``to_optuna(space)`` returns ``fn(trial) -> config``:

- parameters are suggested in the space's dependency order (``space.names``), and only when
  active (:meth:`~spaces.graph.SpaceGraph.activity_fn`: a simple condition or an AND needs its
  parents active, an OR needs any one disjunct), so Optuna never sees an inactive parameter;
- ``Int``/``Float`` -> ``suggest_int``/``suggest_float`` with the same bounds (inclusive),
  ``log`` and ``step``;
- ``Ordinal`` -> ``suggest_int(name, 0, len(sequence) - 1)``: TPE models the order of the
  values; the config holds the value, ``sequence[index]``;
- ``Categorical`` -> ``suggest_categorical``. Optuna accepts only None/bool/int/float/str
  choices; other choices (tuples, ...) and choice lists mixing ``True`` with ``1`` are given to
  Optuna as strings (``repr`` of the value) and mapped back. ``weights`` are not used by Optuna;
- ``Constant`` -> the value, not suggested;
- a configuration matching a forbidden clause raises ``optuna.TrialPruned`` naming the clause.

The returned dict holds values (never ordinal indices), so with Ray Tune's ``OptunaSearch``
(``OptunaSearch(space=to_optuna(space), ...)``) the trial config is the archtune config.

Example::

    import optuna
    fn = to_optuna(space)
    study = optuna.create_study()
    study.optimize(lambda t: objective(fn(t)), n_trials=20)
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from spaces import core

__all__ = ["to_optuna", "OptunaDefineByRun", "optuna_choices", "decode_params"]

_OPTUNA_TYPES = (type(None), bool, int, float, str)


def optuna_choices(choices: tuple) -> tuple[tuple, dict | None]:
    """Choices as Optuna sees them, and the decode map (``None`` when no encoding is needed)."""
    plain = all(type(c) in _OPTUNA_TYPES for c in choices)
    has_bool = any(type(c) is bool for c in choices)
    has_num = any(type(c) in (int, float) for c in choices)
    if plain and not (has_bool and has_num):
        return tuple(choices), None
    encoded = [repr(c) for c in choices]
    if len(set(encoded)) != len(encoded):
        encoded = [f"{i}:{e}" for i, e in enumerate(encoded)]
    return tuple(encoded), dict(zip(encoded, choices))


class OptunaDefineByRun:
    """Callable ``fn(trial) -> config`` built by :func:`to_optuna` (picklable)."""

    def __init__(self, space: core.SearchSpace):
        self.space = space
        self._plan: list[tuple[str, core.Param, Callable | None, Any]] = []
        for name in space.names:
            p = space.params[name]
            extra: Any = None
            if isinstance(p, core.Categorical):
                extra = optuna_choices(p.choices)
            self._plan.append((name, p, space.activity_fn(name), extra))

    def __call__(self, trial: Any) -> dict:
        import optuna

        config: dict[str, Any] = {}
        for name, p, active, extra in self._plan:
            if active is not None and not active(config):
                continue
            config[name] = self._suggest(trial, name, p, extra)
        for f in self.space.forbiddens:
            if f.is_forbidden(config):
                values = ", ".join(f"{n}={config.get(n)!r}" for n in f.names)
                raise optuna.TrialPruned(
                    f"configuration violates forbidden clause '{f}' ({values})")
        return config

    @staticmethod
    def _suggest(trial: Any, name: str, p: core.Param, extra: Any) -> Any:
        if isinstance(p, core.Constant):
            return p.value
        if isinstance(p, core.Ordinal):
            return p.sequence[trial.suggest_int(name, 0, len(p.sequence) - 1)]
        if isinstance(p, core.Categorical):
            choices, decode = extra
            v = trial.suggest_categorical(name, choices)
            return decode[v] if decode is not None else v
        if isinstance(p, core.Int):
            return int(trial.suggest_int(name, p.low, p.high, step=p.step, log=p.log))
        if isinstance(p, core.Float):
            v = trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)
            return p.normalize(v)
        raise TypeError(f"parameter {name!r}: type {type(p).__name__} cannot be compiled to "
                        "Optuna")

    def __repr__(self) -> str:
        return f"OptunaDefineByRun(space={self.space!r})"


def to_optuna(space: core.SearchSpace) -> OptunaDefineByRun:
    """A define-by-run function ``fn(trial) -> config`` for ``space`` (see module docstring)."""
    if not isinstance(space, core.SearchSpace):
        raise TypeError(f"to_optuna needs a SearchSpace, got {type(space).__name__}")
    return OptunaDefineByRun(space)


def decode_params(space: core.SearchSpace, params: Mapping[str, Any]) -> dict:
    """Turn an Optuna ``trial.params`` dict back into an archtune config (ordinal indices and
    encoded categoricals mapped to values; inactive parameters are already absent)."""
    out: dict[str, Any] = {}
    for name in space.names:
        p = space.params[name]
        if isinstance(p, core.Constant):
            active = space.activity_fn(name)
            if active is None or active(out):
                out[name] = p.value
            continue
        if name not in params:
            continue
        v = params[name]
        if isinstance(p, core.Ordinal):
            v = p.sequence[int(v)]
        elif isinstance(p, core.Categorical):
            _, decode = optuna_choices(p.choices)
            v = decode[v] if decode is not None else v
        out[name] = p.normalize(v)
    return out
