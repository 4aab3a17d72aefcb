"""Evaluating subnets with inherited weights.

One-shot methods recalibrate BatchNorm before validating a subnet: the running statistics a
supernet accumulates mix every path, so :func:`recalibrate_bn` resets them and re-estimates
them (cumulative average) on a few training batches with the subnet's choices applied.
:class:`SubnetEvaluator` caches those batches and the validation set once and scores many
configurations (the supernet's BatchNorm buffers are restored after each one).
:func:`subnet_cost` gives parameters, FLOPs and (optionally) latency of the exported subnet.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainers.oneshot import ops
from trainers.oneshot.mutators import Mutator

__all__ = ["SubnetEvaluator", "accuracy", "bn_layers", "recalibrate_bn", "subnet_cost"]

_BN = (nn.modules.batchnorm._BatchNorm, ops.BatchNorm2d)


def bn_layers(model: nn.Module) -> list[nn.Module]:
    """Every BatchNorm layer of ``model`` (torch's and the sliced one)."""
    return [m for m in model.modules() if isinstance(m, _BN)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Reset every BatchNorm's statistics and re-estimate them as the cumulative average over
    ``batches`` (input tensors, already on the model's device); returns the batch count. The
    model is left in eval mode."""
    layers = bn_layers(model)
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    n = 0
    for x in batches:
        model(x)
        n += 1
    for m, mom in zip(layers, saved):
        m.momentum = mom
    model.eval()
    return n


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
             ) -> dict[str, float]:
    """``{"val_acc", "val_loss"}`` of ``model`` (eval mode) over ``(x, y)`` batches."""
    model.eval()
    correct, loss, n = 0, 0.0, 0
    for x, y in batches:
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return {"val_acc": correct / max(1, n), "val_loss": loss / max(1, n)}


class SubnetEvaluator:
    """Scores configurations of ``supernet`` with inherited weights.

    Args:
        supernet: the trained supernet (moved to ``device``).
        train_loader: source of the ``recalib_batches`` BatchNorm-recalibration batches
            (taken once, in its order).
        val_loader: the validation data (cached on ``device`` as one batch).
        recalib_batches: batches used to recalibrate BatchNorm (0: keep the supernet's
            statistics).
    """

    def __init__(self, supernet: nn.Module, train_loader: Iterable, val_loader: Iterable,
                 recalib_batches: int = 4, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = supernet.to(self.device)
        self.mutator = Mutator(supernet)
        self.recalib = [x.to(self.device) for x, _ in
                        itertools.islice(iter(train_loader), int(recalib_batches))]
        pairs = [(x, torch.as_tensor(y)) for x, y in val_loader]
        # one forward over the whole validation set: many small subnets are overhead-bound
        self.val = [(torch.cat([x for x, _ in pairs]).to(self.device),
                     torch.cat([y for _, y in pairs]).to(self.device))] if pairs else []

    def __call__(self, config: Mapping[str, Any]) -> dict[str, float]:
        """``{"val_acc", "val_loss"}`` of ``config`` (strict) with inherited weights."""
        self.mutator.apply(config, strict=True)
        layers = bn_layers(self.model)
        state = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                 for m in layers]
        try:
            if self.recalib:
                recalibrate_bn(self.model, self.recalib)
            return accuracy(self.model, self.val)
        finally:
            with torch.no_grad():
                for m, (rm, rv, nb) in zip(layers, state):
                    m.running_mean.copy_(rm)
                    m.running_var.copy_(rv)
                    m.num_batches_tracked.copy_(nb)


def subnet_cost(supernet: nn.Module, config: Mapping[str, Any], image_size: int,
                in_channels: int = 3, latency: bool = False) -> dict[str, float]:
    """``{"params", "flops"[, "latency_ms"]}`` of the exported subnet (batch 1, CPU)."""
    from trainers.nas import objectives
    from trainers.oneshot.export import build_subnet

    net = build_subnet(supernet, config).cpu()
    shape = (1, in_channels, int(image_size), int(image_size))
    out = {"params": float(objectives.count_params(net)),
           "flops": float(objectives.count_flops(net, shape))}
    if latency:
        out["latency_ms"] = objectives.measure_latency(net, shape, "cpu", 2, 5)
    return out
