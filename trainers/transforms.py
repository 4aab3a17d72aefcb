"""Image pipelines: what turns a decoded image into the tensor a model sees.

Training (:func:`create_train_transform`) is timm's ImageNet training pipeline,
``timm.data.create_transform(input_size, is_training=True, ...)``: RandomResizedCrop (scale
``(train_crop_scale, 1)``, timm's default 0.08; ratio 3/4-4/3), horizontal flip 0.5, ColorJitter
0.4, then ToTensor and Normalize with the model's mean/std and interpolation. The
``data-augmentation`` op of a configuration is inserted where timm inserts its AutoAugment (and
Quick-Tune its ops): in the secondary stage, after the crop and flip, replacing ColorJitter
(timm turns ColorJitter off whenever an AutoAugment/RandAugment policy is on):

============================  ================================================================
``data-augmentation``         op in the secondary stage
============================  ================================================================
``none``                      none (ColorJitter 0.4 stays)
``auto-augment``              timm's AutoAugment policy ``auto-augment`` (``v0`` or
                              ``original``), translate ``0.45 * side``, fill = the model's mean
``random-augment``            ``torchvision RandAugment(num_ops=ra-num-ops,
                              magnitude=ra-magnitude, num_magnitude_bins=31)``
``trivial-augment``           ``torchvision TrivialAugmentWide()``
============================  ================================================================

Evaluation (:func:`create_eval_transform`) is timm's eval pipeline from the model's data config
(:func:`resolve_data_config`: ``crop_pct``, interpolation, mean/std): resize to
``size / crop_pct``, centre crop, normalise.

Both take a PIL image or a ``uint8 (3, H, W)`` tensor. :func:`create_fixed_transform` is the
plain fixed-size pipeline the other trainers use (resize + centre crop, an optional uint8
augmentation, normalise).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from trainers.datasets.config import IMAGENET_MEAN, IMAGENET_STD
from trainers.errors import TrainerError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TIMM_CROP_SCALE",
    "augmentation_op",
    "create_eval_transform",
    "create_fixed_transform",
    "create_train_transform",
    "resolve_data_config",
]

TIMM_CROP_SCALE = 0.08  # timm's RandomResizedCrop lower scale bound


class _AsPIL:
    """A ``uint8 (C, H, W)`` tensor becomes an RGB PIL image; a PIL image passes unchanged."""

    def __call__(self, img: Any) -> Any:
        if isinstance(img, torch.Tensor):
            from torchvision.transforms.v2 import functional as TF

            return TF.to_pil_image(img.expand(3, -1, -1) if img.shape[0] == 1 else img)
        return img

    def __repr__(self) -> str:
        return "AsPIL()"


class _Normalize:
    """uint8 CHW tensor -> float32 CHW tensor in model space: ``(x / 255 - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != len(std):
            raise TrainerError(f"mean and std must have the same length, got {mean!r} and {std!r}")
        if any(float(s) <= 0 for s in std):
            raise TrainerError(f"std values must be > 0, got {std!r}")
        self.mean = torch.tensor([float(m) for m in mean], dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor([float(s) for s in std], dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        x = img.as_subclass(torch.Tensor).to(torch.float32).div_(255.0)
        return (x - self.mean) / self.std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


class _Pipeline:
    """A picklable sequence of callables (DataLoader workers pickle the dataset)."""

    def __init__(self, steps: Sequence[Callable[[Any], Any]]):
        self.steps = list(steps)

    def __call__(self, img: Any) -> Any:
        for step in self.steps:
            img = step(img)
        return img

    def __repr__(self) -> str:
        return "Pipeline(\n" + "".join(f"    {s!r}\n" for s in self.steps) + ")"


def create_fixed_transform(image_size: int | None,
                           mean: Sequence[float] = IMAGENET_MEAN,
                           std: Sequence[float] = IMAGENET_STD,
                           augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
                           ) -> Callable[[Any], torch.Tensor]:
    """Fixed-size pipeline: image -> ``uint8 (3, S, S)`` (shorter side resized to ``S`` then
    centre crop; ``None`` keeps the size) -> ``augment`` (uint8 -> uint8, e.g.
    :func:`trainers.augment.build_train_transform`) -> ``(x / 255 - mean) / std``."""
    from torchvision.transforms import v2

    steps: list[Callable[[Any], Any]] = [v2.ToImage()]
    if image_size is not None:
        steps += [v2.Resize(int(image_size), antialias=True), v2.CenterCrop(int(image_size))]
    steps.append(_Plain())
    if augment is not None:
        steps.append(augment)
    steps.append(_Normalize(mean, std))
    return _Pipeline(steps)


class _Plain:
    """A torchvision ``Image`` (tv_tensor) becomes a plain tensor, grey repeated to 3 channels."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        img = img.as_subclass(torch.Tensor)
        return img.expand(3, -1, -1).contiguous() if img.shape[0] == 1 else img

    def __repr__(self) -> str:
        return "Plain()"


def resolve_data_config(model: nn.Module) -> dict[str, Any]:
    """The model's data config from timm (``input_size``, ``interpolation``, ``mean``, ``std``,
    ``crop_pct``, ``crop_mode``); ImageNet defaults at 224 px for a model timm knows nothing of.
    """
    from timm.data import resolve_data_config as timm_resolve
    from timm.data import resolve_model_data_config

    if getattr(model, "pretrained_cfg", None) is not None:
        return dict(resolve_model_data_config(model))
    return dict(timm_resolve({}, model=model))


def _fill(mean: Sequence[float]) -> tuple[int, ...]:
    return tuple(min(255, round(255 * float(m))) for m in mean)


def augmentation_op(config: Mapping[str, Any], input_size: int, mean: Sequence[float],
                    interpolation: str = "bilinear") -> Callable[[Any], Any] | None:
    """The ``data-augmentation`` op of a flat configuration, on PIL images (None for ``none``).

    Reads ``data-augmentation`` and its children ``auto-augment``, ``ra-num-ops``,
    ``ra-magnitude`` (their knobs' defaults when absent).
    """
    from timm.data.transforms import str_to_interp_mode, str_to_pil_interp
    from torchvision.transforms import v2

    from .augment import augmentation_kwargs, with_safe_posterize

    kw = augmentation_kwargs(config)
    name = kw["name"]
    if name == "none":
        return None
    interp = "bilinear" if interpolation in (None, "random") else interpolation
    if name == "auto-augment":
        from timm.data.auto_augment import auto_augment_transform

        hparams = {"translate_const": max(1, int(input_size * 0.45)), "img_mean": _fill(mean),
                   "interpolation": str_to_pil_interp(interp)}
        return with_safe_posterize(auto_augment_transform(kw["policy"], hparams))
    fill = list(_fill(mean))
    if name == "random-augment":
        return v2.RandAugment(num_ops=int(kw["num_ops"]), magnitude=int(kw["magnitude"]),
                              num_magnitude_bins=31, interpolation=str_to_interp_mode(interp),
                              fill=fill)
    if name == "trivial-augment":
        return v2.TrivialAugmentWide(interpolation=str_to_interp_mode(interp), fill=fill)
    raise TrainerError(f"data-augmentation: unknown value {name!r}")


def create_train_transform(input_size: int, data_config: Mapping[str, Any],
                           config: Mapping[str, Any] | None = None,
                           crop_scale: float = TIMM_CROP_SCALE,
                           hflip: float = 0.5) -> Callable[[Any], torch.Tensor]:
    """timm's training pipeline at ``input_size`` with the configuration's augmentation op in
    the secondary stage (see the module docstring). ``data_config`` is
    :func:`resolve_data_config`'s dict; ``crop_scale`` is RandomResizedCrop's lower scale bound,
    ``hflip`` the horizontal-flip probability.
    """
    from timm.data import create_transform

    if not 0.0 < float(crop_scale) <= 1.0:
        raise TrainerError(f"train_crop_scale: must be in (0, 1], got {crop_scale!r}")
    interpolation = data_config.get("interpolation", "bilinear")
    mean, std = tuple(data_config.get("mean", IMAGENET_MEAN)), tuple(data_config.get("std", IMAGENET_STD))
    primary, secondary, final = create_transform(
        int(input_size), is_training=True, scale=(float(crop_scale), 1.0), hflip=float(hflip),
        interpolation=interpolation, mean=mean, std=std, separate=True)
    op = augmentation_op(config or {}, int(input_size), mean, interpolation)
    middle = list(secondary.transforms) if op is None else [op]
    return _Pipeline([_AsPIL(), *primary.transforms, *middle, *final.transforms])


def create_eval_transform(input_size: int, data_config: Mapping[str, Any]
                          ) -> Callable[[Any], torch.Tensor]:
    """timm's evaluation pipeline at ``input_size`` from the model's data config (resize to
    ``input_size / crop_pct``, centre crop, normalise)."""
    from timm.data import create_transform

    tf = create_transform(
        int(input_size), is_training=False,
        interpolation=data_config.get("interpolation", "bilinear"),
        mean=tuple(data_config.get("mean", IMAGENET_MEAN)),
        std=tuple(data_config.get("std", IMAGENET_STD)),
        crop_pct=data_config.get("crop_pct"), crop_mode=data_config.get("crop_mode"))
    return _Pipeline([_AsPIL(), *tf.transforms])
