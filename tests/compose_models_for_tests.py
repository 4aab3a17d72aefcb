"""Model classes for the compose/model-space end-to-end tests, in a module of their own so that
Ray workers can unpickle them (a class defined in a test module is pickled by reference to a
module name that only pytest's import path knows)."""
from __future__ import annotations

import sys

import ray.cloudpickle as _cp
from torch import nn

__all__ = ["Tiny"]

_cp.register_pickle_by_value(sys.modules[__name__])


class Tiny(nn.Module):
    """One searchable conv: kernel size and a width multiplier read from an Archai-style arch."""

    def __init__(self, arch, width: int = 4):
        super().__init__()
        k = arch.pick("kernel")
        self.body = nn.Sequential(nn.Conv2d(3, width * arch.pick("mult"), k, padding=k // 2),
                                  nn.ReLU())

    def forward(self, x):
        return self.body(x)
