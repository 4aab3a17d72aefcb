"""``build_subnet(supernet, config)``: one architecture of a supernet as a plain module.

The supernet is deep-copied, ``config`` applied strictly (:func:`apply_config`), then exported
bottom-up: an :class:`OperationSpace` becomes its chosen candidate, an :class:`InputSpace` a
:class:`ChosenInputs` (fixed positions and reduction), a fine-grained op
(:mod:`trainers.oneshot.ops`) its plain ``torch.nn`` layer with the sliced weights, a
:class:`ValueSpace` attribute its current value, and a module that defines
``export_subnet()`` whatever that returns (for structure that depends on values, such as a
block that drops its expansion conv at expansion 1). The result holds no mutables; its weights
are copies, so training it leaves the supernet untouched.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainers.errors import TrainerError
from trainers.oneshot import ops
from trainers.oneshot.mutables import (
    InputSpace,
    Mutable,
    OperationSpace,
    ValueExpr,
    ValueSpace,
    reduce_inputs,
)
from trainers.oneshot.mutators import apply_config

__all__ = ["ChosenInputs", "build_subnet", "export_module"]

_OPS = (ops.Conv2d, ops.Linear, ops.BatchNorm2d)


class ChosenInputs(nn.Module):
    """The exported form of an :class:`InputSpace`: reduces the inputs at fixed positions."""

    def __init__(self, indices: Sequence[int], n_inputs: int, reduction: str) -> None:
        super().__init__()
        self.indices, self.n_inputs, self.reduction = tuple(indices), int(n_inputs), reduction

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        return reduce_inputs([inputs[i] for i in self.indices], self.reduction)

    def extra_repr(self) -> str:
        return f"indices={list(self.indices)}, reduction={self.reduction!r}"


def export_module(module: nn.Module) -> Any:
    """``module`` with every mutable and fine-grained op replaced by its current fixed form
    (in place for ordinary modules; see the module docstring)."""
    if isinstance(module, OperationSpace):
        return export_module(module.chosen())
    if isinstance(module, InputSpace):
        return ChosenInputs(module.indices(), module.n_candidates, module.reduction)
    if isinstance(module, ValueSpace):
        return module.value
    if isinstance(module, _OPS):
        return module.export()
    hook = getattr(module, "export_subnet", None)
    if callable(hook):
        module = hook()
    for name, child in list(module.named_children()):
        fixed = export_module(child)
        if not isinstance(fixed, nn.Module):
            delattr(module, name)
        setattr(module, name, fixed)
    for name, value in list(vars(module).items()):
        if isinstance(value, (ValueExpr, ValueSpace)):
            setattr(module, name, value.value)
    return module


def build_subnet(supernet: nn.Module, config: Mapping[str, Any]) -> nn.Module:
    """A plain module of the architecture ``config`` with weights copied from ``supernet``.

    Raises:
        SpaceError: ``config`` is not a strict, valid configuration of the supernet.
    """
    apply_config(supernet, config, strict=True)
    net = export_module(copy.deepcopy(supernet))
    left = [n for n, m in net.named_modules() if isinstance(m, (Mutable, *_OPS))]
    if left:
        raise TrainerError(f"build_subnet: mutables left after export at {left[:5]} (a container "
                        f"that is not an nn.Module child?)")
    return net
