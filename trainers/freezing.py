"""Which parameters train: ``pct-to-freeze`` and linear probing.

Parameters are ordered from the input side using timm's ``group_matcher`` layer map (falling
back to registration order), the classifier head is excluded from freezing, and the first
``pct`` fraction of the backbone's parameter *elements* is frozen (robust across CNNs and ViTs,
whose per-tensor sizes differ widely).
"""
from __future__ import annotations

import functools
import warnings

import torch
from torch import nn

from trainers.errors import TrainerError

__all__ = [
    "apply_trainable",
    "backbone_parameters",
    "freeze_plan",
    "head_module_names",
    "head_parameter_names",
    "trainable_names",
]


@functools.lru_cache(maxsize=64)
def _recreated_modules(architecture: str) -> tuple[str, ...]:
    """Names of the submodules timm's ``reset_classifier`` re-creates for ``architecture``
    (found on a ``meta``-device copy: no memory, no weights). Only the outermost are listed."""
    import timm

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = timm.create_model(architecture, pretrained=False, num_classes=2)
    before = dict(net.named_modules())
    net.reset_classifier(3)
    new = sorted(n for n, m in net.named_modules() if n and before.get(n) is not m)
    return tuple(n for n in new if not any(n.startswith(o + ".") for o in new if o != n))


def head_module_names(model: nn.Module) -> tuple[str, ...]:
    """The classifier head: every submodule ``reset_classifier`` re-creates (VOLO's ``head`` and
    ``aux_head``, DLA's 1x1-conv ``fc``, a ViT's ``head`` ...). Found for timm models from their
    ``pretrained_cfg["architecture"]``; otherwise the module ``get_classifier()`` returns."""
    arch = (getattr(model, "pretrained_cfg", None) or {}).get("architecture")
    names: tuple[str, ...] = ()
    if arch and callable(getattr(model, "reset_classifier", None)):
        try:
            names = _recreated_modules(str(arch))
        except Exception:  # noqa: BLE001 - not buildable by name: fall back to get_classifier
            names = ()
    own = dict(model.named_modules())
    names = tuple(n for n in names if n in own)
    if names:
        return names
    get_classifier = getattr(model, "get_classifier", None)
    head = get_classifier() if callable(get_classifier) else None
    if isinstance(head, nn.Module):
        return tuple(n for n, m in model.named_modules() if m is head and n)[:1]
    return ()


def head_parameter_names(model: nn.Module) -> set[str]:
    """Names of the head's parameters (:func:`head_module_names`, else the
    ``pretrained_cfg["classifier"]`` prefix)."""
    prefixes = head_module_names(model)
    names = {n for n, _ in model.named_parameters()
             if any(n == p or n.startswith(p + ".") for p in prefixes)}
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
