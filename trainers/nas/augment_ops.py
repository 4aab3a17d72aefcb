"""Box-aware RandAugment / AutoAugment policies built from the augmentation-space configs.

Images are ``(C, H, W)`` tensors, float in ``[0, 1]`` or ``uint8``, taken *before*
normalisation. Boxes are XYXY pixel coordinates (a :class:`torchvision.tv_tensors.BoundingBoxes`
or a plain ``(N, 4)`` tensor). Geometric ops go through :mod:`torchvision.transforms.v2`
functionals applied to both the image and its boxes, so the boxes move with the pixels; boxes
pushed (almost) out of the frame are dropped together with their per-box target fields.

Magnitude mapping (``m`` in 0..10, linear, ``MAX_LEVEL = 10``; ``f = m / 10``):

==============  =====================================================================
op              effect at magnitude m (random sign where it says +/-)
==============  =====================================================================
Equalize        histogram equalisation (magnitude unused)
Solarize        invert pixels above ``1 - f`` (uint8: ``256 - 256 f``)
Color           saturation factor ``1 +/- 0.9 f`` (RGB only; a no-op on grey images)
Cutout          a grey square of side ``100 f * s`` px (at least 1 px when m > 0), boxes kept
SolarizeAdd     add ``110 f / 255`` to pixels below 0.5 (uint8: add ``110 f`` below 128)
TranslateX/Y    shift by ``+/- 250 f * s`` px
ShearX/Y        shear coefficient ``+/- 0.3 f`` (angle ``atan(0.3 f)``)
Rotate          ``+/- 30 f`` degrees about the image centre
==============  =====================================================================

``s`` scales the pixel constants for small images: ``s = min(1, side / 640)`` where side is the
image width (TranslateX), height (TranslateY) or the shorter side (Cutout). At 640 px and above
the constants are the AutoAugment-for-detection values (250 px translate, 100 px cutout); a 32 px
image translates at most 12.5 px.
"""
from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F

__all__ = [
    "OPS",
    "MAX_LEVEL",
    "REFERENCE_SIZE",
    "apply_op",
    "RandAugmentPolicy",
    "AutoAugmentPolicy",
    "policy_from_config",
]

MAX_LEVEL = 10
REFERENCE_SIZE = 640
MAX_ROTATE_DEG = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE_PX = 250.0
MAX_CUTOUT_PX = 100.0
MAX_SOLARIZE_ADD = 110.0
COLOR_RANGE = 0.9
FILL = 0.0          # fill of pixels uncovered by geometric ops (fraction of the max value)
CUTOUT_FILL = 0.5   # grey


def _fraction(magnitude: float) -> float:
    if not 0 <= magnitude <= MAX_LEVEL:
        raise ValueError(f"magnitude must be in [0, {MAX_LEVEL}], got {magnitude!r}")
    return float(magnitude) / MAX_LEVEL


def _max_value(image: torch.Tensor) -> float:
    return 255.0 if image.dtype == torch.uint8 else 1.0


def _scale(side: int) -> float:
    return min(1.0, side / REFERENCE_SIZE)


def _sign(rng: random.Random) -> float:
    return -1.0 if rng.random() < 0.5 else 1.0


def _affine(image, boxes, *, angle=0.0, translate=(0.0, 0.0), shear=(0.0, 0.0)):
    fill = [FILL * _max_value(image)] * image.shape[-3]
    kw = dict(angle=angle, translate=list(translate), scale=1.0, shear=list(shear))
    out_img = F.affine(tv_tensors.Image(image), fill=fill, **kw).as_subclass(torch.Tensor)
    if boxes is not None:
        boxes = F.affine(boxes, **kw)
    return out_img, boxes


def _equalize(image, boxes, m, rng):
    return F.equalize(image), boxes


def _solarize(image, boxes, m, rng):
    top = _max_value(image)
    threshold = (1.0 - _fraction(m)) * (256.0 if image.dtype == torch.uint8 else 1.0)
    if threshold > top:  # m == 0 on uint8: nothing is solarised
        return image, boxes
    return F.solarize(image, threshold), boxes


def _color(image, boxes, m, rng):
    if image.shape[-3] != 3:
        return image, boxes
    factor = max(0.0, 1.0 + _sign(rng) * COLOR_RANGE * _fraction(m))
    return F.adjust_saturation(image, factor), boxes


def _cutout(image, boxes, m, rng):
    h, w = image.shape[-2:]
    f = _fraction(m)
    if f == 0:
        return image, boxes
    side = max(1, int(round(MAX_CUTOUT_PX * f * _scale(min(h, w)))))
    cy, cx = rng.randrange(h), rng.randrange(w)
    y0, y1 = max(0, cy - side // 2), min(h, cy - side // 2 + side)
    x0, x1 = max(0, cx - side // 2), min(w, cx - side // 2 + side)
    out = image.clone()
    value = CUTOUT_FILL * _max_value(image)
    out[..., y0:y1, x0:x1] = int(value) if image.dtype == torch.uint8 else value
    return out, boxes


def _solarize_add(image, boxes, m, rng):
    f = _fraction(m)
    if image.dtype == torch.uint8:
        shifted = (image.to(torch.int16) + int(round(MAX_SOLARIZE_ADD * f))).clamp(0, 255).to(torch.uint8)
        return torch.where(image < 128, shifted, image), boxes
    shifted = (image + MAX_SOLARIZE_ADD * f / 255.0).clamp(0.0, 1.0)
    return torch.where(image < 0.5, shifted, image), boxes


def _translate_x(image, boxes, m, rng):
    px = _sign(rng) * MAX_TRANSLATE_PX * _fraction(m) * _scale(image.shape[-1])
    return _affine(image, boxes, translate=(px, 0.0))


def _translate_y(image, boxes, m, rng):
    px = _sign(rng) * MAX_TRANSLATE_PX * _fraction(m) * _scale(image.shape[-2])
    return _affine(image, boxes, translate=(0.0, px))


def _shear_deg(m, rng) -> float:
    return math.degrees(math.atan(_sign(rng) * MAX_SHEAR * _fraction(m)))


def _shear_x(image, boxes, m, rng):
    return _affine(image, boxes, shear=(_shear_deg(m, rng), 0.0))


def _shear_y(image, boxes, m, rng):
    return _affine(image, boxes, shear=(0.0, _shear_deg(m, rng)))


def _rotate(image, boxes, m, rng):
    return _affine(image, boxes, angle=_sign(rng) * MAX_ROTATE_DEG * _fraction(m))


OpFn = Callable[[torch.Tensor, Any, float, random.Random], tuple]

_OP_TABLE: dict[str, OpFn] = {
    "Equalize": _equalize,
    "Solarize": _solarize,
    "Color": _color,
    "Cutout": _cutout,
    "SolarizeAdd": _solarize_add,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "Rotate": _rotate,
}
OPS: tuple[str, ...] = tuple(_OP_TABLE)
GEOMETRIC_OPS = frozenset({"TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate"})


def _as_boxes(boxes, canvas_size) -> tv_tensors.BoundingBoxes:
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        return boxes
    t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return tv_tensors.BoundingBoxes(t, format="XYXY", canvas_size=tuple(canvas_size))


def apply_op(
    name: str,
    image: torch.Tensor,
    boxes: Any = None,
    magnitude: float = 5,
    rng: random.Random | None = None,
) -> tuple[torch.Tensor, Any]:
    """Apply augmentation op ``name`` at ``magnitude`` (0..10) to ``image`` and its ``boxes``.

    Returns ``(image, boxes)``; boxes are returned as XYXY ``BoundingBoxes`` (or ``None``),
    clamped to the image but not filtered (see :func:`_clean_target` for dropping).
    """
    if name not in _OP_TABLE:
        raise ValueError(f"unknown augmentation op {name!r}; valid: {', '.join(OPS)}")
    rng = rng or random.Random()
    image = torch.as_tensor(image)
    if boxes is not None:
        boxes = _as_boxes(boxes, image.shape[-2:])
    out, out_boxes = _OP_TABLE[name](image, boxes, magnitude, rng)
    if out_boxes is not None and name in GEOMETRIC_OPS:
        h, w = image.shape[-2:]
        t = out_boxes.as_subclass(torch.Tensor).clone()
        t[:, 0::2] = t[:, 0::2].clamp(0, w)
        t[:, 1::2] = t[:, 1::2].clamp(0, h)
        out_boxes = tv_tensors.wrap(t, like=out_boxes)
    return out, out_boxes


def _clean_target(target: Mapping[str, Any], boxes: tv_tensors.BoundingBoxes, min_size: float) -> dict:
    """New target with the transformed boxes; boxes smaller than ``min_size`` px are dropped
    together with every other per-box entry (tensors/lists whose length matches the box count)."""
    t = boxes.as_subclass(torch.Tensor)
    keep = ((t[:, 2] - t[:, 0]) >= min_size) & ((t[:, 3] - t[:, 1]) >= min_size)
    n = len(t)
    out = dict(target)
    for key, value in target.items():
        if key == "boxes":
            continue
        if isinstance(value, torch.Tensor) and value.ndim >= 1 and len(value) == n:
            out[key] = value[keep]
        elif isinstance(value, (list, tuple)) and len(value) == n:
            out[key] = type(value)(v for v, k in zip(value, keep.tolist()) if k)
    original = target["boxes"]
    kept = t[keep]
    out["boxes"] = tv_tensors.wrap(kept, like=boxes) if isinstance(original, tv_tensors.BoundingBoxes) else kept.to(
        torch.as_tensor(original).dtype
    )
    return out


class _Policy:
    """Shared call logic: ``policy(image)`` -> image; ``policy(image, target)`` -> (image, target)."""

    min_box_size: float = 1.0

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def ops_for_call(self) -> list[tuple[str, float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, image: torch.Tensor, target: Mapping[str, Any] | None = None):
        boxes = None
        if target is not None and "boxes" in target:
            boxes = _as_boxes(target["boxes"], image.shape[-2:])
        for name, magnitude in self.ops_for_call():
            image, boxes = apply_op(name, image, boxes, magnitude, self.rng)
        if target is None:
            return image
        if boxes is None:
            return image, dict(target)
        return image, _clean_target(target, boxes, self.min_box_size)


class RandAugmentPolicy(_Policy):
    """RandAugment: ``num_ops`` ops drawn with replacement from ``ops``, all at ``magnitude``."""

    def __init__(self, num_ops: int, magnitude: float, ops: Sequence[str] = OPS, seed: int | None = None):
        super().__init__(seed)
        if int(num_ops) != num_ops or num_ops < 0:
            raise ValueError(f"num_ops must be a non-negative integer, got {num_ops!r}")
        _fraction(magnitude)
        unknown = [o for o in ops if o not in _OP_TABLE]
        if unknown or not ops:
            raise ValueError(f"unknown augmentation ops {unknown}; valid: {', '.join(OPS)}")
        self.num_ops, self.magnitude, self.ops = int(num_ops), float(magnitude), tuple(ops)

    def ops_for_call(self) -> list[tuple[str, float]]:
        return [(self.rng.choice(self.ops), self.magnitude) for _ in range(self.num_ops)]

    def __repr__(self) -> str:
        return f"RandAugmentPolicy(num_ops={self.num_ops}, magnitude={self.magnitude})"


@dataclass(frozen=True)
class AugOp:
    """One AutoAugment op: applied with ``probability`` at ``magnitude``."""

    name: str
    probability: float
    magnitude: float

    def __post_init__(self):
        if self.name not in _OP_TABLE:
            raise ValueError(f"unknown augmentation op {self.name!r}; valid: {', '.join(OPS)}")
        if not 0 <= self.probability <= 1:
            raise ValueError(f"probability must be in [0, 1], got {self.probability!r}")
        _fraction(self.magnitude)


class AutoAugmentPolicy(_Policy):
    """AutoAugment: each call picks one sub-policy uniformly and applies its ops in order,
    each with its own probability."""

    def __init__(self, sub_policies: Sequence[Sequence[AugOp | tuple]], seed: int | None = None):
        super().__init__(seed)
        subs = tuple(tuple(op if isinstance(op, AugOp) else AugOp(*op) for op in sp) for sp in sub_policies)
        if not subs:
            raise ValueError("AutoAugmentPolicy needs at least one sub-policy")
        self.sub_policies = subs

    def ops_for_call(self) -> list[tuple[str, float]]:
        sub = self.rng.choice(self.sub_policies)
        return [(op.name, op.magnitude) for op in sub if self.rng.random() < op.probability]

    def __repr__(self) -> str:
        return f"AutoAugmentPolicy({len(self.sub_policies)} sub-policies)"


def policy_from_config(config: Mapping[str, Any], seed: int | None = None) -> _Policy | None:
    """Build the augmentation policy described by ``config`` (``None`` when it names none).

    ``config["augment"]`` may be ``"randaugment"``, ``"autoaugment"`` or ``"none"``; without it
    the policy is inferred from the parameter names of the ``randaugment`` space (``num_ops``,
    ``magnitude``) or of the ``autoaugment`` space (``sub_policy.<i>.op<j>.{type,prob,magnitude}``).
    """
    from spaces.library import augment as aug_space

    kind = config.get("augment")
    if kind is None:
        if aug_space.RA_NUM_OPS in config and aug_space.RA_MAGNITUDE in config:
            kind = "randaugment"
        elif aug_space.aa_key(0, 0, "type") in config:
            kind = "autoaugment"
        else:
            return None
    kind = str(kind).lower()
    if kind in ("none", "", "false"):
        return None
    if kind == "randaugment":
        return RandAugmentPolicy(
            int(config.get(aug_space.RA_NUM_OPS, 2)), float(config.get(aug_space.RA_MAGNITUDE, 5)), seed=seed
        )
    if kind == "autoaugment":
        subs = []
        for i in range(aug_space.AA_SUB_POLICIES):
            ops = []
            for j in range(aug_space.AA_OPS_PER_SUB_POLICY):
                key = aug_space.aa_key(i, j, "type")
                if key not in config:
                    continue
                ops.append(
                    AugOp(
                        str(config[key]),
                        float(config[aug_space.aa_key(i, j, "prob")]),
                        float(config[aug_space.aa_key(i, j, "magnitude")]),
                    )
                )
            if ops:
                subs.append(ops)
        if not subs:
            raise ValueError("autoaugment config holds no sub-policy keys (sub_policy.<i>.op<j>.type)")
        return AutoAugmentPolicy(subs, seed=seed)
    raise ValueError(f"augment must be 'randaugment', 'autoaugment' or 'none', got {kind!r}")
