"""A model's mutables as archtune decisions and as a :class:`spaces.SearchSpace`.

:func:`decisions` scans a model (depth-first, in registration order, each module once) and
groups its mutables by key: a mutable without an explicit key is keyed by its module path.
Mutables sharing a key must be of one kind with the same choices; they are ONE decision.
A mutable reached only inside a candidate of an :class:`OperationSpace` is active only when
that candidate is chosen (a condition ``Equals(key, op_key, candidate)``).

:func:`search_space` compiles the decisions: an OperationSpace becomes a categorical, a
ValueSpace an ordinal (numbers in increasing order) or a categorical, an InputSpace a
categorical over its subsets (``"0+2"``). Every parameter carries
``meta={"arch": True, "mutable": kind}``.

:func:`nni_search_space` writes the same decisions as NNI classic-NAS search-space JSON
(``layer_choice`` / ``input_choice`` / ``choice`` per key), which ``spaces.formats.nni`` reads
back; a configuration of that space (candidate names, chosen-input tuples) applies to the model
through the mutators as it is.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from spaces.core import Categorical, Equals, Ordinal, SearchSpace
from spaces.errors import SpaceError
from trainers.oneshot.mutables import Mutable, OperationSpace, ValueSpace

__all__ = ["Decision", "decisions", "nni_search_space", "search_space"]


@dataclass
class Decision:
    """One decision: its key, kind, choices, the mutables that share it, and the
    ``(op_key, candidate)`` it is conditional on (``None``: always active)."""

    key: str
    kind: str
    choices: tuple
    mutables: list[Mutable] = field(default_factory=list)
    condition: tuple[str, Any] | None = None
    ordered: bool = False


def _walk(module: nn.Module, prefix: str, context: tuple[str, Any] | None,
          seen: set[int]) -> Iterator[tuple[str, Mutable, tuple[str, Any] | None]]:
    for name, child in module.named_children():
        if id(child) in seen:
            continue
        seen.add(id(child))
        path = f"{prefix}.{name}" if prefix else name
        ctx = context
        if isinstance(child, Mutable):
            if not child.explicit_key:
                child.key = path
            yield path, child, context
            if isinstance(child, OperationSpace):
                for cname, value in zip(child.candidates.keys(), child.choices):
                    cand = child.candidates[cname]
                    if id(cand) in seen:
                        continue
                    seen.add(id(cand))
                    if isinstance(cand, Mutable):
                        yield f"{path}.candidates.{cname}", cand, (child.key, value)
                    yield from _walk(cand, f"{path}.candidates.{cname}", (child.key, value), seen)
                continue
        yield from _walk(child, path, ctx, seen)


def decisions(model: nn.Module) -> dict[str, Decision]:
    """The model's decisions by key, in scan order (keys are assigned to unkeyed mutables).

    Raises:
        SpaceError: mutables sharing a key differ in kind or choices, or the model has none.
    """
    out: dict[str, Decision] = {}
    problems: list[str] = []
    conds: dict[str, set] = {}
    for path, m, ctx in _walk(model, "", None, set()):
        d = out.get(m.key)
        if d is None:
            out[m.key] = Decision(m.key, m.kind, tuple(m.choices), [m], ctx,
                                  ordered=isinstance(m, ValueSpace) and m.ordered)
            conds[m.key] = {ctx}
            continue
        if d.kind != m.kind or d.choices != tuple(m.choices):
            problems.append(f"key {m.key!r} is shared by a {d.kind} with choices "
                            f"{list(d.choices)} and a {m.kind} at {path!r} with choices "
                            f"{list(m.choices)}; mutables with one key must have the same "
                            f"kind and choices")
            continue
        d.mutables.append(m)
        conds[m.key].add(ctx)
    if problems:
        raise SpaceError(problems, source=type(model).__name__)
    for key, d in out.items():
        # a decision used under different candidates (or also outside one) is always active
        d.condition = next(iter(conds[key])) if len(conds[key]) == 1 else None
    return out


def search_space(model: nn.Module, name: str | None = None) -> SearchSpace:
    """The model's mutables compiled into an archtune :class:`~spaces.SearchSpace`.

    Raises:
        SpaceError: the model has no mutables, or shared keys disagree (see :func:`decisions`).
    """
    ds = decisions(model)
    where = name or type(model).__name__
    if not ds:
        raise SpaceError(f"model {where!r} has no mutables (OperationSpace, InputSpace, "
                         f"ValueSpace): nothing to search")
    params, conditions = [], []
    for key, d in ds.items():
        meta = {"arch": True, "mutable": d.kind}
        if d.ordered:
            params.append(Ordinal(key, d.choices, meta=meta))
        else:
            params.append(Categorical(key, d.choices, meta=meta))
        if d.condition is not None:
            conditions.append(Equals(key, d.condition[0], d.condition[1]))
    return SearchSpace(params, conditions=conditions, name=where)


def nni_search_space(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The model's decisions as NNI classic-NAS search-space JSON, one entry per key.

    OperationSpace -> ``{"_type": "layer_choice", "_value": [candidate names]}``; InputSpace ->
    ``{"_type": "input_choice", "_value": {"candidates": [input names], "n_chosen": n}}``
    (``n_chosen`` None, any non-empty subset, is written as the list of counts ``1..k``);
    ValueSpace -> ``{"_type": "choice", "_value": [candidates]}``. NNI's flat format has no
    conditions: a decision active under one candidate only is listed like any other.

    Raises:
        SpaceError: as :func:`decisions`.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, d in decisions(model).items():
        m = d.mutables[0]
        if d.kind == "operation":
            out[key] = {"_type": "layer_choice", "_value": list(m.names)}
        elif d.kind == "input":
            n = m.n_chosen if m.n_chosen is not None else list(range(1, m.n_candidates + 1))
            out[key] = {"_type": "input_choice",
                        "_value": {"candidates": list(m.names), "n_chosen": n}}
        else:
            out[key] = {"_type": "choice", "_value": list(d.choices)}
    return out
