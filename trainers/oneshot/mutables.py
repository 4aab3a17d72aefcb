"""Mutables: search-space decisions that live inside a PyTorch model (NNI / Hyperbox style).

- :class:`OperationSpace` picks one of several candidate modules (or, for differentiable
  search, mixes them with weights);
- :class:`InputSpace` picks ``n_chosen`` of the inputs handed to it (``None``: any non-empty
  subset) and reduces them;
- :class:`ValueSpace` is a value (a width, a kernel size, an expansion ratio) read by the
  fine-grained ops of :mod:`trainers.oneshot.ops`; :func:`derive` combines values
  (``derive(lambda c, e: c * e, channels, expansion)``) without creating a new decision.

Every mutable has a ``key``. Mutables with the same key are ONE decision; the same mutable
object reached through several module paths is one decision too. A mutable without an explicit
key gets its module path (``blocks.2.op``) when a model is scanned
(:func:`trainers.oneshot.space.decisions`), so a saved architecture reads like the model.
A mutator (:mod:`trainers.oneshot.mutators`) sets the current choice of each decision; until then
a mutable uses its first candidate.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from spaces.errors import SpaceError
from trainers.errors import TrainerError

__all__ = [
    "REDUCTIONS",
    "InputSpace",
    "Mutable",
    "OperationSpace",
    "ValueExpr",
    "ValueSpace",
    "derive",
    "leaf_spaces",
    "max_value_of",
    "value_of",
]

REDUCTIONS = ("sum", "mean", "concat")


def _check_key(key: Any, what: str) -> str | None:
    if key is None:
        return None
    if not isinstance(key, str) or not key.strip():
        raise SpaceError(f"{what}: key must be a non-empty string or None, got {key!r}")
    return key.strip()


class Mutable(nn.Module):
    """Base of the three mutables. ``key`` is the explicit key or, after a scan, the module path.

    Attributes:
        key: the decision this mutable belongs to (``None`` until scanned when not given).
        explicit_key: whether ``key`` was given by the user (shared keys are matched by it).
    """

    kind: str = ""

    def __init__(self, key: str | None) -> None:
        super().__init__()
        self.key = _check_key(key, type(self).__name__)
        self.explicit_key = self.key is not None

    @property
    def choices(self) -> tuple:
        """The values of this decision, in the order the search space lists them."""
        raise NotImplementedError

    def set_choice(self, value: Any) -> None:
        """Select ``value`` (one of :attr:`choices`) and leave mixture mode."""
        raise NotImplementedError

    def set_weights(self, weights: torch.Tensor | None) -> None:
        """Mixture weights over :attr:`choices` (differentiable search); ``None`` ends it."""
        self._weights = weights

    def extra_repr(self) -> str:
        return f"key={self.key!r}, choices={list(self.choices)!r}"


class OperationSpace(Mutable):
    """One of ``candidates`` (a list: values ``0..n-1``; a mapping: its names).

    In mixture mode (:meth:`set_weights`) the output is ``sum_i w_i * candidate_i(x)``
    (``reduction="sum"``) or their weighted mean (``"mean"``). Candidates must then produce
    outputs of one shape.
    """

    kind = "operation"

    def __init__(self, candidates: Sequence[nn.Module] | Mapping[str, nn.Module],
                 key: str | None = None, reduction: str = "sum") -> None:
        super().__init__(key)
        if isinstance(candidates, Mapping):
            names = [str(n) for n in candidates]
            mods = list(candidates.values())
        else:
            mods = list(candidates)
            names = [str(i) for i in range(len(mods))]
        if not mods:
            raise SpaceError(f"OperationSpace {self.key or ''}: candidates must not be empty")
        bad = [n for n, m in zip(names, mods) if not isinstance(m, nn.Module)]
        if bad:
            raise SpaceError(f"OperationSpace {self.key or ''}: candidates {bad} are not "
                             f"nn.Modules")
        if len(set(names)) != len(names) or any("." in n for n in names):
            raise SpaceError(f"OperationSpace {self.key or ''}: candidate names {names} must be "
                             f"distinct and contain no '.'")
        if reduction not in ("sum", "mean"):
            raise SpaceError(f"OperationSpace {self.key or ''}: reduction {reduction!r}; valid: "
                             f"sum, mean")
        self.reduction = reduction
        self.candidates = nn.ModuleDict(dict(zip(names, mods)))
        self._names = tuple(names)
        self._values: tuple = tuple(names) if isinstance(candidates, Mapping) \
            else tuple(range(len(mods)))
        self._choice = self._values[0]
        self._weights: torch.Tensor | None = None

    @property
    def choices(self) -> tuple:
        return self._values

    @property
    def names(self) -> tuple[str, ...]:
        """The candidates' names (``"0", "1", ...`` for a list of candidates)."""
        return self._names

    @property
    def choice(self) -> Any:
        return self._choice

    def set_choice(self, value: Any) -> None:
        if value not in self._values:
            raise SpaceError(f"OperationSpace {self.key!r}: {value!r} is not a candidate; "
                             f"valid: {list(self._values)}")
        self._choice, self._weights = value, None

    def chosen(self) -> nn.Module:
        """The candidate module of the current choice."""
        return self.candidates[self._names[self._values.index(self._choice)]]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._weights is None:
            return self.chosen()(*args, **kwargs)
        outs = [w * m(*args, **kwargs) for w, m in zip(self._weights, self.candidates.values())]
        total = torch.stack(outs).sum(0)
        return total / len(outs) if self.reduction == "mean" else total


def _subset_name(names: Sequence[str]) -> str:
    return "+".join(names)


class InputSpace(Mutable):
    """Chooses ``n_chosen`` of the inputs passed to ``forward(inputs)`` and reduces them.

    Args:
        n_candidates: number of inputs (or give ``choose_from``).
        choose_from: names of the inputs (default ``"0" .. "n-1"``).
        n_chosen: how many to choose; ``None`` means any non-empty subset.
        reduction: ``sum``, ``mean`` or ``concat`` (along dim 1) of the chosen inputs.

    A choice is the chosen names joined with ``"+"`` in input order (``"0+2"``), so it is a
    plain string in every searcher. In mixture mode the output is ``sum_i w_i * input_i``.
    """

    kind = "input"

    def __init__(self, n_candidates: int | None = None, choose_from: Sequence[str] | None = None,
                 n_chosen: int | None = None, key: str | None = None,
                 reduction: str = "sum") -> None:
        super().__init__(key)
        what = f"InputSpace {self.key or ''}"
        if choose_from is None:
            if not isinstance(n_candidates, int) or n_candidates < 1:
                raise SpaceError(f"{what}: n_candidates must be an integer >= 1 (or give "
                                 f"choose_from), got {n_candidates!r}")
            choose_from = [str(i) for i in range(n_candidates)]
        names = [str(n) for n in choose_from]
        if n_candidates is not None and n_candidates != len(names):
            raise SpaceError(f"{what}: n_candidates={n_candidates} but choose_from has "
                             f"{len(names)} names")
        if not names or len(set(names)) != len(names) or any("+" in n for n in names):
            raise SpaceError(f"{what}: choose_from {names} must be distinct names without '+'")
        if n_chosen is not None and not (isinstance(n_chosen, int) and 1 <= n_chosen <= len(names)):
            raise SpaceError(f"{what}: n_chosen must be None or in [1, {len(names)}], got "
                             f"{n_chosen!r}")
        if reduction not in REDUCTIONS:
            raise SpaceError(f"{what}: reduction {reduction!r}; valid: {', '.join(REDUCTIONS)}")
        self.names, self.n_chosen, self.reduction = tuple(names), n_chosen, reduction
        sizes = [n_chosen] if n_chosen is not None else range(1, len(names) + 1)
        subsets = [c for k in sizes for c in itertools.combinations(range(len(names)), k)]
        self._subsets = {_subset_name([names[i] for i in c]): c for c in subsets}
        self._choice = next(iter(self._subsets))
        self._weights = None

    @property
    def n_candidates(self) -> int:
        return len(self.names)

    @property
    def choices(self) -> tuple:
        return tuple(self._subsets)

    @property
    def choice(self) -> str:
        return self._choice

    def indices(self, value: str | None = None) -> tuple[int, ...]:
        """Input positions of ``value`` (default: the current choice)."""
        return self._subsets[self._choice if value is None else value]

    def set_choice(self, value: Any) -> None:
        if isinstance(value, (list, tuple)):
            value = _subset_name([self.names[int(i)] if isinstance(i, int) else str(i)
                                  for i in value])
        if value not in self._subsets:
            raise SpaceError(f"InputSpace {self.key!r}: {value!r} is not a valid choice; valid: "
                             f"{list(self._subsets)[:10]}")
        self._choice, self._weights = value, None

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(inputs) != len(self.names):
            raise TrainerError(f"InputSpace {self.key!r}: expected {len(self.names)} inputs, got "
                             f"{len(inputs)}")
        if self._weights is not None:
            return torch.stack([w * x for w, x in zip(self._weights, inputs)]).sum(0)
        return reduce_inputs([inputs[i] for i in self.indices()], self.reduction)


def reduce_inputs(chosen: Sequence[torch.Tensor], reduction: str) -> torch.Tensor:
    """``sum`` / ``mean`` / ``concat`` (dim 1) of the chosen tensors."""
    if reduction == "concat":
        return torch.cat(list(chosen), dim=1)
    total = torch.stack(list(chosen)).sum(0)
    return total / len(chosen) if reduction == "mean" else total


class ValueSpace(Mutable):
    """A value among ``candidates`` read by fine-grained ops (:mod:`trainers.oneshot.ops`).

    Numeric candidates given in increasing order compile to an ordinal parameter, others to a
    categorical. In differentiable search the mutator sets a hard Gumbel-softmax sample: the
    value is its argmax and :attr:`gate` carries the gradient (an op multiplies its output by it).
    """

    kind = "value"

    def __init__(self, candidates: Iterable[Any], key: str | None = None) -> None:
        super().__init__(key)
        vals = tuple(c.item() if hasattr(c, "item") else c for c in candidates)
        if not vals or len(set(vals)) != len(vals):
            raise SpaceError(f"ValueSpace {self.key or ''}: candidates {list(vals)} must be "
                             f"non-empty and distinct")
        self._values = vals
        self._choice = vals[0]
        self._weights = None

    @property
    def choices(self) -> tuple:
        return self._values

    @property
    def ordered(self) -> bool:
        """True when the candidates are numbers in increasing order."""
        nums = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self._values)
        return nums and list(self._values) == sorted(self._values)

    @property
    def value(self) -> Any:
        return self._choice

    @property
    def gate(self) -> torch.Tensor | None:
        """The straight-through weight of the current value in mixture mode, else ``None``."""
        if self._weights is None:
            return None
        return self._weights[self._values.index(self._choice)]

    def set_choice(self, value: Any) -> None:
        if value not in self._values:
            raise SpaceError(f"ValueSpace {self.key!r}: {value!r} is not a candidate; valid: "
                             f"{list(self._values)}")
        self._choice, self._weights = value, None

    def set_weights(self, weights: torch.Tensor | None) -> None:
        """A one-hot (straight-through) sample over :attr:`choices`: its argmax becomes the
        value."""
        self._weights = weights
        if weights is not None:
            self._choice = self._values[int(weights.detach().argmax())]

    def forward(self) -> Any:  # a ValueSpace is read, not called; kept for nn.Module
        return self._choice


class ValueExpr:
    """A value computed from ValueSpaces (and constants) by ``fn``; not a decision itself."""

    def __init__(self, fn: Callable[..., Any], inputs: Sequence[Any]) -> None:
        self.fn, self.inputs = fn, tuple(inputs)

    @property
    def value(self) -> Any:
        return self.fn(*(value_of(i) for i in self.inputs))

    def candidates(self) -> list[Any]:
        """Every value the expression can take (over the product of its leaves' candidates)."""
        leaves = leaf_spaces(self)
        out = []
        for combo in itertools.product(*(leaf.choices for leaf in leaves)):
            assign = dict(zip(map(id, leaves), combo))
            out.append(self._eval(assign))
        return out

    def _eval(self, assign: Mapping[int, Any]) -> Any:
        args = []
        for i in self.inputs:
            if isinstance(i, ValueSpace):
                args.append(assign[id(i)])
            elif isinstance(i, ValueExpr):
                args.append(i._eval(assign))
            else:
                args.append(i)
        return self.fn(*args)

    def __repr__(self) -> str:
        return f"ValueExpr({getattr(self.fn, '__name__', 'fn')}, {list(self.inputs)!r})"


def derive(fn: Callable[..., Any], *inputs: Any) -> ValueExpr:
    """A value computed from ValueSpaces, e.g. ``derive(lambda c, e: c * e, width, expansion)``."""
    return ValueExpr(fn, inputs)


def value_of(v: Any) -> Any:
    """The current value of an int, a :class:`ValueSpace` or a :class:`ValueExpr`."""
    return v.value if isinstance(v, (ValueSpace, ValueExpr)) else v


def max_value_of(v: Any) -> Any:
    """The largest value ``v`` can take (weights are allocated at it)."""
    if isinstance(v, ValueSpace):
        return max(v.choices)
    if isinstance(v, ValueExpr):
        return max(v.candidates())
    return v


def leaf_spaces(v: Any) -> list[ValueSpace]:
    """The distinct ValueSpaces an int / ValueSpace / ValueExpr depends on."""
    if isinstance(v, ValueSpace):
        return [v]
    out: list[ValueSpace] = []
    if isinstance(v, ValueExpr):
        for i in v.inputs:
            for leaf in leaf_spaces(i):
                if all(leaf is not o for o in out):
                    out.append(leaf)
    return out
