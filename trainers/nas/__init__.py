"""Model builders for architecture configurations, by space name.

``build_model(arch_name, config, task, num_classes, **overrides)`` looks the builder up in a
registry and returns an ``nn.Module``: a classifier (``task="classification"``, logits) or a
torchvision detector (``task="detection"``, RetinaNet). A builder is registered with::

    @register_builder("mnasnet")
    def build_mnasnet(config, task, num_classes, **overrides) -> nn.Module: ...

Builders read architecture parameters by their space names from ``config`` plus optional build
settings (``overrides`` win over ``config``); the SpineNet / NAS-FPN builders use
``BUILD_SETTINGS`` below. Unknown builder names raise ``ValueError`` naming the closest ones.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from typing import Any, Callable, Mapping

from torch import nn

__all__ = [
    "BUILD_SETTINGS",
    "build_model",
    "get_builder",
    "is_builder",
    "list_builders",
    "register_builder",
    "setting",
]

Builder = Callable[..., nn.Module]
_BUILDERS: dict[str, Builder] = {}
# modules whose import registers builders (loaded lazily on first lookup)
_BUILTIN_MODULES: tuple[str, ...] = (
    "trainers.nas.spinenet_builders",
    "trainers.nas.mobile",
)
_loaded = False

# Build settings (config keys next to the architecture parameters) and their defaults.
BUILD_SETTINGS: dict[str, Any] = {
    "filter_scale": 1.0,        # SpineNet base widths multiplier
    "endpoint_filters": 256,    # SpineNet output width (P3..P7)
    "resample_alpha": 0.5,      # SpineNet cross-scale connection width factor
    "block_repeats": 1,         # SpineNet blocks per stage
    "head_convs": 4,            # RetinaNet head tower depth
    "head_filters": None,       # RetinaNet head tower width (None: backbone width)
    "image_size": 640,          # detector input size (torchvision transform min/max size)
    "anchor_scale": 4.0,        # anchor base size = anchor_scale * stride
    "fpn_filters": 256,         # NAS-FPN width
    "fpn_repeats": 3,           # NAS-FPN stacked cell repeats
    "fpn_backbone": "resnet10t",  # timm features_only model under NAS-FPN
    "pretrained": False,        # pretrained timm weights for the NAS-FPN backbone
    "drop_rate": 0.0,           # classifier dropout
}


def register_builder(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``fn(config, task, num_classes, **overrides)`` under ``name``."""
    key = name.lower()

    def deco(fn: Builder) -> Builder:
        if key in _BUILDERS and _BUILDERS[key] is not fn:
            raise ValueError(f"model builder {key!r} is already registered")
        _BUILDERS[key] = fn
        return fn

    return deco


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # an optional builder module not written (yet)
            if e.name != mod:
                raise


def list_builders(filter: str = "*") -> list[str]:
    """Registered builder names matching an fnmatch pattern, sorted."""
    _ensure_loaded()
    return sorted(n for n in _BUILDERS if fnmatch.fnmatch(n, filter.lower()))


def is_builder(name: str) -> bool:
    _ensure_loaded()
    return name.lower() in _BUILDERS


def get_builder(name: str) -> Builder:
    """The builder registered under ``name``; ``ValueError`` listing close names otherwise."""
    _ensure_loaded()
    try:
        return _BUILDERS[name.lower()]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), list(_BUILDERS), n=3, cutoff=0.5)
        hint = f"; did you mean {close}?" if close else ""
        raise ValueError(f"unknown architecture {name!r}{hint} valid: {sorted(_BUILDERS)}") from None


def setting(config: Mapping[str, Any], overrides: Mapping[str, Any], key: str) -> Any:
    """A build setting: ``overrides`` first, then ``config``, then ``BUILD_SETTINGS``."""
    if key in overrides and overrides[key] is not None:
        return overrides[key]
    if key in config and config[key] is not None:
        return config[key]
    return BUILD_SETTINGS[key]


def build_model(arch_name: str, config: Mapping[str, Any], task: str = "classification",
                num_classes: int = 10, **overrides: Any) -> nn.Module:
    """Build the model of architecture space ``arch_name`` for ``config``.

    ``task`` is ``"classification"`` (module returning logits) or ``"detection"`` (torchvision
    detector: ``model(images, targets)`` returns losses in train mode, detections in eval mode).
    """
    if task not in ("classification", "detection"):
        raise ValueError(f"task must be 'classification' or 'detection', got {task!r}")
    return get_builder(arch_name)(dict(config), task, int(num_classes), **overrides)
