"""Model builders for architecture configurations, by space name.

``build_model(arch_name, config, task, num_classes, **overrides)`` looks the builder up in a
registry and returns an ``nn.Module``: a classifier (``task="classification"``, logits), a
torchvision detector (``task="detection"``, RetinaNet) or a segmenter (``task="segmentation"``,
per-pixel logits, :class:`trainers.nas.heads.SegmentationModel`). A builder is registered with::

    @register_builder("mnasnet", tasks=("classification", "detection", "segmentation"))
    def build_mnasnet(config, task, num_classes, **overrides) -> nn.Module: ...

The ``tasks`` metadata declares what the builder can build (:func:`check_task` reads it; a
builder without it is taken to support classification and detection).

Builders read architecture parameters by their space names from ``config`` plus optional build
settings (``overrides`` win over ``config``); the SpineNet / NAS-FPN builders use
``BUILD_SETTINGS`` below. Unknown builder names raise :class:`TrainerError` naming the closest ones.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from torch import nn

from spaces.registry import Registry
from trainers.errors import TrainerError
from trainers.knobs import TASKS

__all__ = [
    "BUILDERS",
    "BUILD_SETTINGS",
    "build_model",
    "builder_tasks",
    "check_task",
    "get_builder",
    "is_builder",
    "list_builders",
    "register_builder",
    "setting",
]

Builder = Callable[..., nn.Module]
BUILDERS: Registry = Registry("architecture", error=TrainerError,
                              modules=("trainers.nas.spinenet_builders", "trainers.nas.mobile"))

# Build settings (config keys next to the architecture parameters) and their defaults.
BUILD_SETTINGS: dict[str, Any] = {
    "filter_scale": 1.0,        # SpineNet base widths multiplier
    "endpoint_filters": 256,    # SpineNet output width (P3..P7)
    "resample_alpha": 0.5,      # SpineNet cross-scale connection width factor
    "block_repeats": 1,         # SpineNet blocks per stage
    "spinenet_base": None,      # spinenet_scaling: searched architecture to scale (None: SpineNet-49)
    "head_convs": 4,            # RetinaNet / segmentation head tower depth
    "head_filters": None,       # RetinaNet / segmentation head width (None: backbone width)
    "image_size": 640,          # detector input size (torchvision transform min/max size)
    "anchor_scale": 4.0,        # anchor base size = anchor_scale * stride
    "fpn_filters": 256,         # NAS-FPN width
    "fpn_repeats": 3,           # NAS-FPN stacked cell repeats
    "fpn_backbone": "resnet10t",  # timm features_only model under NAS-FPN
    "pretrained": False,        # pretrained timm weights for the NAS-FPN backbone
    "drop_rate": 0.0,           # classifier dropout
}


def register_builder(name: str, **meta: Any) -> Callable[[Builder], Builder]:
    """Decorator registering ``fn(config, task, num_classes, **overrides)`` under ``name``;
    keyword arguments are declared metadata (e.g. ``tasks=("classification",)``)."""
    return BUILDERS.register(name, **meta)


def list_builders(filter: str = "*") -> list[str]:
    """Registered builder names matching an fnmatch pattern, sorted."""
    return BUILDERS.list(filter)


def is_builder(name: str) -> bool:
    """True if ``name`` is a registered architecture builder."""
    return name in BUILDERS


def get_builder(name: str) -> Builder:
    """The builder registered under ``name``; :class:`TrainerError` listing close names."""
    return BUILDERS.get(name)


def builder_tasks(name: str) -> tuple[str, ...]:
    """The tasks builder ``name`` declares (default: classification and detection)."""
    return tuple(BUILDERS.meta(name).get("tasks", ("classification", "detection")))


def check_task(name: str, task: str) -> None:
    """Raise :class:`TrainerError` unless ``task`` is a known task that builder ``name`` builds.

    Raises:
        TrainerError: an unknown task, an unknown builder (naming the closest ones), or a task
            the builder does not declare (naming the builders that do).
    """
    if task not in TASKS:
        raise TrainerError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    supported = builder_tasks(name)
    if task not in supported:
        able = [b for b in BUILDERS.list() if task in builder_tasks(b)]
        raise TrainerError(f"task: arch {name!r} builds {', '.join(supported)}, not {task!r}; "
                           f"builders for {task!r}: {', '.join(able)}")


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

    ``task`` is ``"classification"`` (module returning logits), ``"detection"`` (torchvision
    detector: ``model(images, targets)`` returns losses in train mode, detections in eval mode)
    or ``"segmentation"`` (module returning ``(B, num_classes, H, W)`` logits, class 0 the
    background).

    Raises:
        TrainerError: see :func:`check_task`.
    """
    check_task(arch_name, task)
    return get_builder(arch_name)(dict(config), task, int(num_classes), **overrides)
