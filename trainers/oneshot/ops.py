"""Fine-grained searchable ops: ``Conv2d``, ``Linear`` and ``BatchNorm2d`` whose widths and
kernel size may be :class:`~trainers.oneshot.mutables.ValueSpace` (or
:func:`~trainers.oneshot.mutables.derive` expressions over them).

Weights are allocated once at the largest value and sliced for smaller ones: the first ``c``
output (input) channels, the centre ``k x k`` of a kernel. BatchNorm slices its affine
parameters and running statistics the same way, so statistics updated in a subnet are the
supernet's. ``export()`` returns the plain ``torch.nn`` layer of the current values with the
sliced weights copied (what :func:`trainers.oneshot.export.build_subnet` uses).

In differentiable search an op multiplies its output by the straight-through gates of the
ValueSpaces its output width and kernel size depend on, so their logits get gradients.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.errors import TrainerError
from trainers.oneshot.mutables import ValueExpr, ValueSpace, leaf_spaces, max_value_of, value_of

__all__ = ["BatchNorm2d", "Conv2d", "Linear", "Searchable"]

Searchable = Any  # int | ValueSpace | ValueExpr


def _check_positive(name: str, v: Any, op: str) -> None:
    if not isinstance(v, (int, ValueSpace, ValueExpr)) or isinstance(v, bool):
        raise TrainerError(f"{op}: {name} must be an int, a ValueSpace or a derive() expression, "
                        f"got {v!r}")
    m = max_value_of(v)
    if not isinstance(m, int) or m < 1:
        raise TrainerError(f"{op}: {name} must take integer values >= 1, got max {m!r}")


class _SlicedOp(nn.Module):
    """Registers the ValueSpaces of its searchable arguments as submodules (so a model scan
    finds them) and keeps the arguments themselves."""

    def _register_spaces(self, **args: Any) -> None:
        self._args = dict(args)
        for role, v in args.items():
            if isinstance(v, ValueSpace):
                self.add_module(f"{role}_choice", v)
            elif isinstance(v, ValueExpr):
                for j, leaf in enumerate(leaf_spaces(v)):
                    self.add_module(f"{role}_choice{j}", leaf)

    def _gate(self, y: torch.Tensor, *roles: str) -> torch.Tensor:
        seen: list[ValueSpace] = []
        for role in roles:
            for leaf in leaf_spaces(self._args[role]):
                if leaf.gate is not None and all(leaf is not s for s in seen):
                    seen.append(leaf)
                    y = y * leaf.gate
        return y

    def current(self, role: str) -> int:
        """The current value of a searchable argument (``in_channels``, ``kernel_size``, ...)."""
        return int(value_of(self._args[role]))


class Conv2d(_SlicedOp):
    """``nn.Conv2d`` with searchable ``in_channels``, ``out_channels`` and ``kernel_size``
    ('same' padding ``k // 2``). ``depthwise=True`` makes ``groups`` equal the current width
    (``in_channels`` and ``out_channels`` must then be the same value)."""

    def __init__(self, in_channels: Searchable, out_channels: Searchable,
                 kernel_size: Searchable = 1, stride: int = 1, bias: bool = False,
                 depthwise: bool = False) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("kernel_size", kernel_size)):
            _check_positive(name, v, "Conv2d")
        ks = kernel_size.choices if isinstance(kernel_size, ValueSpace) else [max_value_of(kernel_size)]
        if any(int(k) % 2 == 0 for k in ks):
            raise TrainerError(f"Conv2d: kernel sizes must be odd for centre cropping, got {list(ks)}")
        self._register_spaces(in_channels=in_channels, out_channels=out_channels,
                              kernel_size=kernel_size)
        self.stride, self.depthwise = int(stride), bool(depthwise)
        cin, cout, k = (max_value_of(v) for v in (in_channels, out_channels, kernel_size))
        full = nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=bias,
                         groups=cout if depthwise else 1)
        if depthwise and cin != cout:
            raise TrainerError(f"Conv2d: depthwise needs in_channels == out_channels, got max "
                             f"{cin} and {cout}")
        self.max_kernel = k
        self.weight = full.weight
        self.bias = full.bias

    def _sliced(self) -> tuple[torch.Tensor, torch.Tensor | None, int, int]:
        cin, cout, k = (self.current(r) for r in ("in_channels", "out_channels", "kernel_size"))
        w = self.weight[:cout] if self.depthwise else self.weight[:cout, :cin]
        s = (self.max_kernel - k) // 2
        w = w[:, :, s:s + k, s:s + k]
        b = self.bias[:cout] if self.bias is not None else None
        return w, b, k, (cout if self.depthwise else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = self.current("in_channels")
        if x.shape[1] != cin:
            raise TrainerError(f"Conv2d: input has {x.shape[1]} channels, the current "
                             f"in_channels is {cin}")
        w, b, k, groups = self._sliced()
        y = F.conv2d(x, w, b, self.stride, k // 2, 1, groups)
        return self._gate(y, "out_channels", "kernel_size")

    def export(self) -> nn.Conv2d:
        """A plain ``nn.Conv2d`` of the current values holding a copy of the sliced weights."""
        w, b, k, groups = self._sliced()
        out = nn.Conv2d(w.shape[1] * groups, w.shape[0], k, self.stride, padding=k // 2,
                        groups=groups, bias=b is not None)
        with torch.no_grad():
            out.weight.copy_(w)
            if b is not None:
                out.bias.copy_(b)
        return out


class Linear(_SlicedOp):
    """``nn.Linear`` with searchable ``in_features`` and ``out_features``."""

    def __init__(self, in_features: Searchable, out_features: Searchable,
                 bias: bool = True) -> None:
        super().__init__()
        _check_positive("in_features", in_features, "Linear")
        _check_positive("out_features", out_features, "Linear")
        self._register_spaces(in_features=in_features, out_features=out_features)
        full = nn.Linear(max_value_of(in_features), max_value_of(out_features), bias=bias)
        self.weight, self.bias = full.weight, full.bias

    def _sliced(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        fin, fout = self.current("in_features"), self.current("out_features")
        b = self.bias[:fout] if self.bias is not None else None
        return self.weight[:fout, :fin], b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self._sliced()
        if x.shape[-1] != w.shape[1]:
            raise TrainerError(f"Linear: input has {x.shape[-1]} features, the current "
                             f"in_features is {w.shape[1]}")
        return self._gate(F.linear(x, w, b), "out_features")

    def export(self) -> nn.Linear:
        """A plain ``nn.Linear`` of the current values holding a copy of the sliced weights."""
        w, b = self._sliced()
        out = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
        with torch.no_grad():
            out.weight.copy_(w)
            if b is not None:
                out.bias.copy_(b)
        return out


class BatchNorm2d(_SlicedOp):
    """``nn.BatchNorm2d`` with a searchable ``num_features``; affine parameters and running
    statistics are sliced to the current width (updates land in the shared buffers)."""

    def __init__(self, num_features: Searchable, eps: float = 1e-5,
                 momentum: float | None = 0.1) -> None:
        super().__init__()
        _check_positive("num_features", num_features, "BatchNorm2d")
        self._register_spaces(num_features=num_features)
        c = max_value_of(num_features)
        self.eps, self.momentum = float(eps), momentum
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def reset_running_stats(self) -> None:
        """Zero the statistics (BatchNorm recalibration starts from here)."""
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.current("num_features")
        if x.shape[1] != c:
            raise TrainerError(f"BatchNorm2d: input has {x.shape[1]} channels, the current "
                             f"num_features is {c}")
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c],
                            self.bias[:c], self.training, factor, self.eps)

    def export(self) -> nn.BatchNorm2d:
        """A plain ``nn.BatchNorm2d`` of the current width with copied parameters and
        statistics."""
        c = self.current("num_features")
        out = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            out.weight.copy_(self.weight[:c])
            out.bias.copy_(self.bias[:c])
            out.running_mean.copy_(self.running_mean[:c])
            out.running_var.copy_(self.running_var[:c])
            out.num_batches_tracked.copy_(self.num_batches_tracked)
        return out
