"""Which parameters train: ``pct-to-freeze`` and linear probing.

Parameters are ordered from the input side using timm's ``group_matcher`` layer map (falling
back to registration order), the classifier head is excluded from freezing, and the first
``pct`` fraction of the backbone's parameter *elements* is frozen (robust across CNNs and ViTs,
whose per-tensor sizes differ widely).
"""
from __future__ import annotations

import torch
from torch import nn

from trainers.errors import TrainerError

__all__ = [
    "head_parameter_names",
    "backbone_parameters",
    "freeze_plan",
    "apply_trainable",
    "trainable_names",
]


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the classifier head's parameters (``get_classifier()``, else the
    ``pretrained_cfg["classifier"]`` prefix)."""
    ids: set[int] = set()
    get_classifier = getattr(model, "get_classifier", None)
    if callable(get_classifier):
        head = get_classifier()
        if isinstance(head, nn.Module):
            ids = {id(p) for p in head.parameters()}
    names = {n for n, p in model.named_parameters() if id(p) in ids}
    if not names:
        prefix = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
        if isinstance(prefix, str):
            names = {n for n, _ in model.named_parameters() if n.startswith(prefix + ".")}
    return names


def _layer_map(model: nn.Module) -> dict[str, int] | None:
    matcher = getattr(model, "group_matcher", None)
    if not callable(matcher):
        return None
    try:
        from timm.models import group_parameters

        return group_parameters(model, matcher(coarse=False), reverse=True)
    except Exception:
        return None


def backbone_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Backbone ``(name, param)`` pairs ordered from the input side (head excluded)."""
    head = head_parameter_names(model)
    named = [(n, p) for n, p in model.named_parameters() if n not in head]
    layers = _layer_map(model)
    if layers:
        last = max(layers.values(), default=0)
        order = {n: i for i, (n, _) in enumerate(named)}
        named.sort(key=lambda np_: (layers.get(np_[0], last), order[np_[0]]))
    return named


def freeze_plan(model: nn.Module, pct: float) -> set[str]:
    """Names of backbone parameters frozen by ``pct-to-freeze = pct``.

    A tensor is frozen when it starts inside the first ``pct`` of backbone elements, so
    ``pct=0`` freezes nothing and ``pct=1`` freezes the whole backbone (head only trains).
    """
    if not 0.0 <= pct <= 1.0:
        raise TrainerError(f"pct-to-freeze must be in [0, 1], got {pct!r}")
    named = backbone_parameters(model)
    total = sum(p.numel() for _, p in named)
    limit = pct * total
    frozen, seen = set(), 0
    for name, p in named:
        if pct >= 1.0 or seen < limit:
            frozen.add(name)
        seen += p.numel()
    return frozen


def apply_trainable(model: nn.Module, frozen: set[str], head_only: bool = False) -> None:
    """Set ``requires_grad``: False for ``frozen`` names (or every non-head parameter when
    ``head_only``), True for the rest."""
    head = head_parameter_names(model) if head_only else set()
    for name, p in model.named_parameters():
        if head_only:
            p.requires_grad_(name in head)
        else:
            p.requires_grad_(name not in frozen)


def trainable_names(model: nn.Module) -> list[str]:
    return [n for n, p in model.named_parameters() if p.requires_grad]
