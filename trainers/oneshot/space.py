"""A model's mutables as archtune decisions and as a :class:`spaces.SearchSpace`.

:func:`decisions` scans a model (depth-first, in registration order) and groups its mutables
by key: a mutable without an explicit key is keyed by its module path (the first path it is
reached through). Mutables sharing a key must be of one kind with the same choices; they are
ONE decision. The scan records every *context* a decision is reached in: ``None`` outside any
candidate, ``(op_key, candidate)`` inside a candidate of an :class:`OperationSpace` (the
innermost one). A module shared by several candidates is visited once per distinct context,
so a mutable shared by candidates records each of them (and is listed once in
:attr:`Decision.mutables`).

A decision's condition follows from its contexts: all of them candidates of ONE operation
key -> active iff that operation is one of those candidates (``Equals(key, op_key, c)`` for a
single candidate, ``In(key, op_key, (c1, c2, ...))`` for several); reached anywhere outside a
candidate, or under candidates of different operation keys -> always active.

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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from spaces.core import Categorical, Condition, Equals, In, Ordinal, SearchSpace
from spaces.errors import SpaceError
from trainers.oneshot.mutables import Mutable, OperationSpace, ValueSpace

__all__ = ["Context", "Decision", "decisions", "nni_search_space", "search_space"]

Context = tuple[str, Any] | None
"""Where a mutable is reached: ``(op_key, candidate)`` inside a candidate, ``None`` outside."""


@dataclass
class Decision:
    """One decision of a model.

    Attributes:
        key: the decision's key (a configuration's key).
        kind: ``"operation"``, ``"input"`` or ``"value"``.
        choices: its values, in the order the search space lists them.
        mutables: the distinct mutable objects that share it (each listed once).
        condition: ``(op_key, candidates)`` -- active iff the operation ``op_key`` is one of
            ``candidates`` (a non-empty tuple in the operation's choice order); ``None``:
            always active (as active as its enclosing structure).
        ordered: True for a ValueSpace of numbers in increasing order (an ordinal).
    """

    key: str
    kind: str
    choices: tuple
    mutables: list[Mutable] = field(default_factory=list)
    condition: tuple[str, tuple[Any, ...]] | None = None
    ordered: bool = False


def _walk(module: nn.Module, prefix: str, context: Context,
          seen: dict[int, set[Context]]) -> Iterator[tuple[str, Mutable, Context]]:
    """``(path, mutable, context)`` for the mutables under ``module``'s children."""
    for name, child in module.named_children():
        yield from _visit(child, f"{prefix}.{name}" if prefix else name, context, seen)


def _visit(module: nn.Module, path: str, context: Context,
           seen: dict[int, set[Context]]) -> Iterator[tuple[str, Mutable, Context]]:
    """Visit ``module`` reached at ``path`` in ``context``: at most once per distinct context
    (``seen`` maps a module's id to the contexts it was visited in). An unkeyed mutable is
    keyed by the path of its first visit; an OperationSpace's candidates are visited in the
    context ``(op key, candidate value)``."""
    contexts = seen.setdefault(id(module), set())
    if context in contexts:
        return
    first = not contexts
    contexts.add(context)
    if isinstance(module, Mutable):
        if first and not module.explicit_key:
            module.key = path
        yield path, module, context
        if isinstance(module, OperationSpace):
            for cname, value in zip(module.names, module.choices):
                yield from _visit(module.candidates[cname], f"{path}.candidates.{cname}",
                                  (module.key, value), seen)
            return
    yield from _walk(module, path, context, seen)


def _condition(contexts: Sequence[Context],
               found: Mapping[str, Decision]) -> tuple[str, tuple[Any, ...]] | None:
    """The condition of a decision reached in ``contexts``: ``(op_key, candidates)`` when every
    context is a candidate of the one operation ``op_key`` (candidates in its choice order),
    else ``None`` (always active)."""
    if not contexts or any(c is None for c in contexts):
        return None
    op_keys = {c[0] for c in contexts}
    if len(op_keys) != 1:
        return None
    op_key = op_keys.pop()
    values = [c[1] for c in contexts]
    return op_key, tuple(v for v in found[op_key].choices if v in values)


def decisions(model: nn.Module) -> dict[str, Decision]:
    """The model's decisions by key, in scan order (keys are assigned to unkeyed mutables),
    each with its condition (see the module docstring).

    Raises:
        SpaceError: mutables sharing a key differ in kind or choices.
    """
    out: dict[str, Decision] = {}
    problems: list[str] = []
    contexts: dict[str, list[Context]] = {}
    for path, m, ctx in _walk(model, "", None, {}):
        d = out.get(m.key)
        if d is None:
            out[m.key] = Decision(m.key, m.kind, tuple(m.choices), [m],
                                  ordered=isinstance(m, ValueSpace) and m.ordered)
            contexts[m.key] = [ctx]
            continue
        if all(x is not m for x in d.mutables):
            if d.kind != m.kind or d.choices != tuple(m.choices):
                problems.append(f"key {m.key!r} is shared by a {d.kind} with choices "
                                f"{list(d.choices)} and a {m.kind} at {path!r} with choices "
                                f"{list(m.choices)}; mutables with one key must have the "
                                f"same kind and choices")
                continue
            d.mutables.append(m)
        if ctx not in contexts[m.key]:
            contexts[m.key].append(ctx)
    if problems:
        raise SpaceError(problems, source=type(model).__name__)
    for key, d in out.items():
        d.condition = _condition(contexts[key], out)
    return out


def _compile_condition(key: str, condition: tuple[str, tuple[Any, ...]]) -> Condition:
    """``Equals`` for one candidate, ``In`` for several."""
    op_key, values = condition
    if len(values) == 1:
        return Equals(key, op_key, values[0])
    return In(key, op_key, values)


def search_space(model: nn.Module, name: str | None = None) -> SearchSpace:
    """The model's mutables compiled into an archtune :class:`~spaces.SearchSpace`; a decision
    with a condition gets ``Equals(key, op_key, candidate)`` or ``In(key, op_key, candidates)``.

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
            conditions.append(_compile_condition(key, d.condition))
    return SearchSpace(params, conditions=conditions, name=where)


def nni_search_space(model: nn.Module) -> dict[str, dict[str, Any]]:
    """The model's decisions as NNI classic-NAS search-space JSON, one entry per key.

    OperationSpace -> ``{"_type": "layer_choice", "_value": [candidate names]}``; InputSpace ->
    ``{"_type": "input_choice", "_value": {"candidates": [input names], "n_chosen": n}}``
    (``n_chosen`` None, any non-empty subset, is written as the list of counts ``1..k``);
    ValueSpace -> ``{"_type": "choice", "_value": [candidates]}``. NNI's flat format has no
    conditions: a decision active under some candidates only is listed like any other.

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
