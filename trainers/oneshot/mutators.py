"""Mutators: they set the choices of a model's mutables.

- :class:`RandomMutator`: a uniform sample over the active choices (single-path one-shot:
  call :meth:`RandomMutator.reset` before every training step);
- :class:`FairMutator`: strict fairness (FairNAS): :meth:`FairMutator.paths` gives, per
  training step, one path per choice such that every decision visits each of its choices
  once (gradients of the paths are accumulated before one update);
- :class:`SandwichMutator`: the sandwich rule (BigNAS / slimmable networks): per step the
  largest path, the smallest path and one uniform random path;
- :class:`FixedMutator`: applies one configuration; strict by default (every active key
  present, no unknown key, every value one of its choices);
- :class:`DartsMutator`: architecture logits per decision (an ``nn.Module``; its parameters are
  the architecture parameters): softmax mixture for OperationSpace / InputSpace, hard
  Gumbel-softmax for ValueSpace; :meth:`DartsMutator.export` is the argmax (the
  top-``n_chosen`` inputs for an InputSpace).

A configuration is a flat ``{key: value}`` dict over the active decisions, as everywhere in
archtune. Decisions a configuration leaves inactive are set to their first choice.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spaces.core import SearchSpace
from spaces.errors import SpaceError
from trainers.oneshot.mutables import InputSpace
from trainers.oneshot.space import Decision, decisions, search_space

__all__ = ["DartsMutator", "FairMutator", "FixedMutator", "Mutator", "RandomMutator",
           "SandwichMutator", "apply_config"]


def _normalise(d: Decision, value: Any) -> Any:
    m = d.mutables[0]
    if d.kind == "input" and isinstance(value, (list, tuple)):
        return "+".join(m.names[int(i)] if isinstance(i, int) else str(i) for i in value)
    if d.kind == "operation" and value not in d.choices and str(value) in m.names:
        return d.choices[m.names.index(str(value))]  # a candidate's name (NNI layer_choice)
    if value in d.choices:
        return next(c for c in d.choices if c == value)
    return value


def apply_config(model: nn.Module, config: Mapping[str, Any], *, strict: bool = True,
                 space: SearchSpace | None = None,
                 found: Mapping[str, Decision] | None = None) -> dict[str, Any]:
    """Set every decision of ``model`` from ``config``; returns the canonical configuration.

    Strict: every active key must be present, no key may be unknown, every value must be one of
    its choices (all problems are listed in one :class:`SpaceError`). Not strict: missing keys
    take their first choice, unknown keys are ignored (bad values still raise).
    """
    ds = decisions(model)
    space = space or search_space(model)
    given = {k: _normalise(ds[k], v) if k in ds else v for k, v in config.items()}
    problems: list[str] = []
    unknown = sorted(set(given) - set(ds))
    if unknown and strict:
        problems.append(f"unknown keys {unknown}; valid keys: {sorted(ds)}")
    full = {k: v for k, v in given.items() if k in ds}
    for key in space.names:
        if key not in full and space.is_active(key, full):
            if strict:
                problems.append(f"key {key!r} is missing (choices {list(ds[key].choices)})")
            full[key] = ds[key].choices[0]
    for key, v in full.items():
        if v not in ds[key].choices:
            problems.append(f"key {key!r}: {v!r} is not one of {list(ds[key].choices)}")
    if problems:
        raise SpaceError(problems, source="architecture configuration")
    canonical = space.canonical(full)
    for key, d in ds.items():
        value = canonical.get(key, d.choices[0])
        for m in d.mutables:
            m.set_choice(value)
    return canonical


class Mutator:
    """Base: binds a model, its decisions and its compiled search space."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.decisions = decisions(model)
        self.space = search_space(model)

    def apply(self, config: Mapping[str, Any], strict: bool = True) -> dict[str, Any]:
        """Set the model's choices from ``config`` (see :func:`apply_config`)."""
        return apply_config(self.model, config, strict=strict, space=self.space,
                            found=self.decisions)


class RandomMutator(Mutator):
    """Uniform sampling over the active choices, seeded (``np.random.Generator`` or int)."""

    def __init__(self, model: nn.Module, seed: int | np.random.Generator | None = 0) -> None:
        super().__init__(model)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.current: dict[str, Any] = {}

    def sample(self) -> dict[str, Any]:
        """A uniform random configuration (not applied)."""
        return self.space.canonical(self.space.sample(self.rng))

    def reset(self) -> dict[str, Any]:
        """Sample a configuration and apply it (one path of the supernet); returns it."""
        self.current = self.apply(self.sample())
        return self.current


class FairMutator(RandomMutator):
    """Strict-fair sampling (FairNAS): :meth:`paths` returns ``m`` configurations, ``m`` the
    largest number of choices of a decision; decision ``k`` takes its choices in a fresh random
    order (a decision with fewer choices repeats from a second random order), so over one
    step every choice of every decision is trained (a conditional decision, such as an
    expansion under one operation, only on the paths where it is active). Input decisions are
    sampled uniformly."""

    def paths(self) -> list[dict[str, Any]]:
        """The configurations of one training step (not applied)."""
        ds = {k: d for k, d in self.decisions.items() if d.kind != "input"}
        m = max((len(d.choices) for d in ds.values()), default=1)
        orders = {}
        for k, d in ds.items():
            n = len(d.choices)
            idx = np.concatenate([self.rng.permutation(n) for _ in range(-(-m // n))])[:m]
            orders[k] = [d.choices[int(i)] for i in idx]
        out = []
        for j in range(m):
            cfg = self.sample()
            cfg.update({k: orders[k][j] for k in ds})
            out.append(self.space.canonical(cfg))
        return out


class SandwichMutator(RandomMutator):
    """The sandwich rule: :meth:`paths` returns the largest path (every ordered decision at
    its largest choice), the smallest path (every ordered decision at its smallest) and one
    uniform random path; unordered decisions (operations, inputs) are sampled uniformly."""

    def _extreme(self, pick: Any) -> dict[str, Any]:
        cfg = self.sample()
        for k, d in self.decisions.items():
            if d.kind == "value" and all(isinstance(c, (int, float)) for c in d.choices):
                cfg[k] = pick(d.choices)
        return self.space.canonical(cfg)

    def paths(self) -> list[dict[str, Any]]:
        """The configurations of one training step (not applied)."""
        return [self._extreme(max), self._extreme(min), self.sample()]


class FixedMutator(Mutator):
    """Applies ``config`` once at construction (strict unless ``strict=False``)."""

    def __init__(self, model: nn.Module, config: Mapping[str, Any], strict: bool = True) -> None:
        super().__init__(model)
        self.config = self.apply(config, strict=strict)


def _param_name(key: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", key)


class DartsMutator(Mutator, nn.Module):
    """Differentiable architecture search (DARTS; GDAS-style hard Gumbel for values).

    ``alpha[key]`` holds one logit per choice (per input for an InputSpace), zero-initialised.
    :meth:`reset` puts every mutable in mixture mode: OperationSpace / InputSpace weights ``softmax(alpha)``,
    ValueSpace a fresh straight-through ``gumbel_softmax(alpha, tau, hard=True)`` sample.
    Train ``self.parameters()`` on validation batches (bi-level), the model's on training ones.
    """

    def __init__(self, model: nn.Module, tau: float = 1.0) -> None:
        nn.Module.__init__(self)
        Mutator.__init__(self, model)
        if not tau > 0:
            raise SpaceError(f"DartsMutator: tau must be > 0, got {tau!r}")
        self.tau = float(tau)
        self.alpha = nn.ParameterDict({
            _param_name(k): nn.Parameter(torch.zeros(
                d.mutables[0].n_candidates if d.kind == "input" else len(d.choices)))
            for k, d in self.decisions.items()})

    def logits(self, key: str) -> torch.Tensor:
        """The architecture logits of decision ``key``."""
        return self.alpha[_param_name(key)]

    def reset(self) -> None:
        """Enter (or refresh) mixture mode on every mutable."""
        for key, d in self.decisions.items():
            a = self.logits(key)
            if d.kind == "value":
                w = F.gumbel_softmax(a, tau=self.tau, hard=True)
            else:
                w = F.softmax(a, dim=-1)
            for m in d.mutables:
                m.set_weights(w)

    def export(self) -> dict[str, Any]:
        """The argmax configuration over the active decisions (applied to the model)."""
        cfg: dict[str, Any] = {}
        for key in self.space.names:
            d = self.decisions[key]
            a = self.logits(key).detach()
            cfg[key] = _top_inputs(d, a) if d.kind == "input" else d.choices[int(a.argmax())]
        return self.apply(self.space.canonical(cfg))

    def probabilities(self) -> dict[str, list[float]]:
        """``softmax(alpha)`` per decision (for logging)."""
        return {k: [round(float(x), 4) for x in F.softmax(self.logits(k).detach(), -1)]
                for k in self.decisions}

    def entropy(self) -> float:
        """Mean entropy of the decisions' distributions (nats): lower = more decided."""
        hs = []
        for k in self.decisions:
            p = F.softmax(self.logits(k).detach(), -1)
            hs.append(float(-(p * p.clamp_min(1e-12).log()).sum()))
        return sum(hs) / max(1, len(hs)) if hs else math.nan


def _top_inputs(d: Decision, a: torch.Tensor) -> str:
    """The ``n_chosen`` inputs of largest logit (``None``: those at least as likely as
    uniform), in input order."""
    m: InputSpace = d.mutables[0]  # type: ignore[assignment]
    p = F.softmax(a, -1)
    if m.n_chosen is not None:
        idx = sorted(int(i) for i in torch.topk(p, m.n_chosen).indices)
    else:
        idx = [i for i in range(len(p)) if float(p[i]) >= 1.0 / len(p) - 1e-9] or [int(p.argmax())]
    return "+".join(m.names[i] for i in idx)
