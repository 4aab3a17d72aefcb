"""Stochastic Normalization (StochNorm, Kou et al., NeurIPS 2020) for the ``stoch-norm`` knob.

In training, for every channel independently, a Bernoulli mask chooses between normalising with
the mini-batch statistics (as BatchNorm does in training) and normalising with the running
statistics (as BatchNorm does in evaluation); the learnt affine transform follows. The running
statistics are updated exactly like BatchNorm's. In evaluation the layer is plain BatchNorm with
running statistics.

``p`` is the probability that a channel uses the *running* statistics (0.5 by default, as in the
paper); ``p = 0`` is BatchNorm in training mode, ``p = 1`` BatchNorm in evaluation mode. The mask is
drawn from torch's global generator, so ``torch.manual_seed`` makes it reproducible.

The layers subclass the BatchNorm they replace, so parameter and buffer names
(``weight``, ``bias``, ``running_mean``, ``running_var``, ``num_batches_tracked``) and
``isinstance(m, nn.BatchNorm2d)`` checks are unchanged; timm's fused ``BatchNormAct2d`` becomes
:class:`StochNormAct2d`, which keeps the original ``drop`` and ``act`` submodules under the same
names (so timm's ``group_matcher``/layer decay and checkpoints keep working).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainers.errors import TrainerError

__all__ = [
    "StochNorm1d",
    "StochNorm2d",
    "StochNormAct2d",
    "convert_to_stochnorm",
    "count_stochnorm",
]


def _check_p(p: float) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise TrainerError(f"stoch-norm: p must be a probability in [0, 1], got {p!r}")
    return float(p)


class _StochNormMixin:
    """Constructor and forward shared by the StochNorm layers (mixed in before the
    ``nn.BatchNorm1d``/``nn.BatchNorm2d`` it replaces): BatchNorm's arguments plus ``p``."""

    p: float

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, p: float = 0.5,
                 device=None, dtype=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, device=device, dtype=dtype)
        self.p = _check_p(p)

    def forward(self, x: Tensor) -> Tensor:
        self._check_input_dim(x)
        return self._normalize(x)

    def _normalize(self, x: Tensor) -> Tensor:
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        use_plain_bn = (
            not bn.training
            or not bn.track_running_stats
            or bn.running_mean is None
            or bn.running_var is None
        )
        if use_plain_bn:
            return nn.modules.batchnorm._BatchNorm.forward(bn, x)

        # 1) normalise with the running statistics as they are *before* this batch's update
        shape = [1, x.shape[1]] + [1] * (x.ndim - 2)
        mean0 = bn.running_mean.detach().clone().view(shape)
        inv_std0 = torch.rsqrt(bn.running_var.detach().clone() + bn.eps).view(shape)
        z_running = (x - mean0) * inv_std0

        # 2) normalise with the batch statistics, updating the running statistics like BatchNorm
        if bn.momentum is None:
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked)
        else:
            if bn.num_batches_tracked is not None:
                bn.num_batches_tracked.add_(1)
            factor = bn.momentum
        z_batch = F.batch_norm(x, bn.running_mean, bn.running_var, None, None, True, factor, bn.eps)

        # 3) per channel, pick one of the two (1 = running statistics)
        probs = torch.full((x.shape[1],), self.p, device=x.device)
        mask = torch.bernoulli(probs).to(z_batch.dtype).view(shape)
        z = mask * z_running.to(z_batch.dtype) + (1.0 - mask) * z_batch
        if bn.affine:
            z = z * bn.weight.view(shape) + bn.bias.view(shape)
        return z

    def extra_repr(self) -> str:
        return super().extra_repr() + f", p={self.p}"  # type: ignore[misc]


class StochNorm1d(_StochNormMixin, nn.BatchNorm1d):
    """StochNorm over (N, C) or (N, C, L) inputs; a drop-in replacement of ``nn.BatchNorm1d``."""


class StochNorm2d(_StochNormMixin, nn.BatchNorm2d):
    """StochNorm over (N, C, H, W) inputs; a drop-in replacement of ``nn.BatchNorm2d``."""


class StochNormAct2d(StochNorm2d):
    """StochNorm followed by timm ``BatchNormAct2d``'s ``drop`` and ``act`` (same submodule names).

    ``drop`` and ``act`` default to identity; :func:`convert_to_stochnorm` moves the original
    modules in.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, p: float = 0.5,
                 act: nn.Module | None = None, drop: nn.Module | None = None,
                 device=None, dtype=None):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=affine,
                         track_running_stats=track_running_stats, p=p, device=device, dtype=dtype)
        self.drop = drop if drop is not None else nn.Identity()
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = super().forward(x)
        x = self.drop(x)
        return self.act(x)


def _batchnorm_act_type():
    try:
        from timm.layers.norm_act import BatchNormAct2d
    except ImportError:  # pragma: no cover - timm is a dependency, but keep the module usable
        return None
    return BatchNormAct2d


def _convert_one(bn: nn.modules.batchnorm._BatchNorm, p: float) -> nn.Module:
    kw = dict(eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
              track_running_stats=bn.track_running_stats, p=p)
    bn_act = _batchnorm_act_type()
    if bn_act is not None and isinstance(bn, bn_act):
        new: nn.Module = StochNormAct2d(bn.num_features, act=bn.act, drop=bn.drop, **kw)
    elif isinstance(bn, nn.BatchNorm2d):
        new = StochNorm2d(bn.num_features, **kw)
    else:
        new = StochNorm1d(bn.num_features, **kw)
    ref = bn.weight if bn.weight is not None else bn.running_mean
    if ref is not None:
        new.to(device=ref.device, dtype=ref.dtype)
    if bn.affine:
        with torch.no_grad():
            new.weight.copy_(bn.weight)
            new.bias.copy_(bn.bias)
        new.weight.requires_grad_(bn.weight.requires_grad)
        new.bias.requires_grad_(bn.bias.requires_grad)
    if bn.track_running_stats and bn.running_mean is not None:
        with torch.no_grad():
            new.running_mean.copy_(bn.running_mean)
            new.running_var.copy_(bn.running_var)
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    new.train(bn.training)
    return new


def convert_to_stochnorm(model: nn.Module, p: float = 0.5) -> nn.Module:
    """Replace every ``nn.BatchNorm1d``/``nn.BatchNorm2d`` in ``model`` (including timm's fused
    ``BatchNormAct2d``, whose activation and drop are kept) with StochNorm, in place.

    Weights, running statistics, ``requires_grad`` flags, device, dtype and train/eval mode are
    copied. Layers already StochNorm, ``SyncBatchNorm``, frozen BatchNorm and other norms are left
    alone. Returns ``model`` (a bare BatchNorm passed as ``model`` is returned converted).

    Convert *before* building the optimiser (the affine parameters are new tensors).
    """
    p = _check_p(p)

    def convertible(m: nn.Module) -> bool:
        return (
            isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))
            and not isinstance(m, _StochNormMixin)
            and not isinstance(m, nn.SyncBatchNorm)
        )

    if convertible(model):
        return _convert_one(model, p)  # type: ignore[arg-type]
    for name, child in list(model.named_children()):
        if convertible(child):
            setattr(model, name, _convert_one(child, p))  # type: ignore[arg-type]
        else:
            convert_to_stochnorm(child, p)
    return model


def count_stochnorm(model: nn.Module) -> int:
    """How many StochNorm layers ``model`` holds."""
    return sum(isinstance(m, _StochNormMixin) for m in model.modules())
