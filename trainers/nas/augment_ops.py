"""Box- and mask-aware RandAugment / AutoAugment policies built from the augmentation-space configs.

Images are ``(C, H, W)`` tensors, float in ``[0, 1]`` or ``uint8``, taken *before*
normalisation. Boxes are XYXY pixel coordinates (a :class:`torchvision.tv_tensors.BoundingBoxes`
or a plain ``(N, 4)`` tensor); masks are ``(H, W)`` label maps or ``(N, H, W)`` instance masks (a
:class:`torchvision.tv_tensors.Mask` or a plain tensor). Geometric ops go through
:mod:`torchvision.transforms.v2` functionals applied to the image, its boxes and its masks, so
boxes and masks move with the pixels (masks use nearest interpolation; uncovered mask pixels
become 0, the background); boxes pushed (almost) out of the frame are dropped together with
their per-box target fields.

Magnitude mapping (``m`` in 0..10, linear, ``MAX_LEVEL = 10``; ``f = m / 10``):

==============  =====================================================================
op              effect at magnitude m (random sign where it says +/-)
==============  =====================================================================
AutoContrast    stretch each channel to the full range (magnitude unused)
Equalize        histogram equalisation (magnitude unused)
Invert          ``max - x`` (magnitude unused)
Posterize       keep ``8 - round(4 f)`` bits per channel (m = 0: unchanged)
Solarize        invert pixels above ``1 - f`` (uint8: ``256 - 256 f``)
Color           saturation factor ``1 +/- 0.9 f`` (RGB only; a no-op on grey images)
Contrast        contrast factor ``1 +/- 0.9 f``
Brightness      brightness factor ``1 +/- 0.9 f``
Sharpness       sharpness factor ``1 +/- 0.9 f``
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

Errors about op names, magnitudes and probabilities are :class:`~trainers.errors.TrainerError`
(a ``ValueError``).
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

from trainers.errors import TrainerError

__all__ = [
    "OPS",
    "GEOMETRIC_OPS",
    "MAX_LEVEL",
    "REFERENCE_SIZE",
    "apply_op",
    "RandAugmentPolicy",
    "AutoAugmentPolicy",
    "AugOp",
    "policy_from_config",
]

MAX_LEVEL = 10
REFERENCE_SIZE = 640
MAX_ROTATE_DEG = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE_PX = 250.0
MAX_CUTOUT_PX = 100.0
MAX_SOLARIZE_ADD = 110.0
ENHANCE_RANGE = 0.9
MAX_POSTERIZE_DROP = 4  # bits removed at magnitude 10
FILL = 0.0          # fill of pixels uncovered by geometric ops (fraction of the max value)
CUTOUT_FILL = 0.5   # grey

Targets = tuple  # boxes / masks (tv_tensors) moved by geometric ops, in call order


def _fraction(magnitude: float) -> float:
    if not 0 <= magnitude <= MAX_LEVEL:
        raise TrainerError(f"augmentation magnitude must be in [0, {MAX_LEVEL}], got {magnitude!r}")
    return float(magnitude) / MAX_LEVEL


def _max_value(image: torch.Tensor) -> float:
    return 255.0 if image.dtype == torch.uint8 else 1.0


def _scale(side: int) -> float:
    return min(1.0, side / REFERENCE_SIZE)


def _sign(rng: random.Random) -> float:
    return -1.0 if rng.random() < 0.5 else 1.0


def _affine(image, targets: Targets, *, angle=0.0, translate=(0.0, 0.0), shear=(0.0, 0.0)):
    fill = [FILL * _max_value(image)] * image.shape[-3]
    kw = dict(angle=angle, translate=list(translate), scale=1.0, shear=list(shear))
    out_img = F.affine(tv_tensors.Image(image), fill=fill, **kw).as_subclass(torch.Tensor)
    return out_img, tuple(F.affine(t, **kw) for t in targets)


def _enhance_factor(m: float, rng: random.Random) -> float:
    return max(0.0, 1.0 + _sign(rng) * ENHANCE_RANGE * _fraction(m))


# photometric ops: image only ------------------------------------------------------------------
def _auto_contrast(image, m, rng):
    return F.autocontrast(image)


def _equalize(image, m, rng):
    return F.equalize(image)


def _invert(image, m, rng):
    return F.invert(image)


def _posterize(image, m, rng):
    bits = 8 - int(round(MAX_POSTERIZE_DROP * _fraction(m)))
    return image if bits >= 8 else F.posterize(image, bits)


def _solarize(image, m, rng):
    top = _max_value(image)
    threshold = (1.0 - _fraction(m)) * (256.0 if image.dtype == torch.uint8 else 1.0)
    if threshold > top:  # m == 0 on uint8: nothing is solarised
        return image
    return F.solarize(image, threshold)


def _color(image, m, rng):
    if image.shape[-3] != 3:
        return image
    return F.adjust_saturation(image, _enhance_factor(m, rng))


def _contrast(image, m, rng):
    if image.shape[-3] not in (1, 3):
        return image
    return F.adjust_contrast(image, _enhance_factor(m, rng))


def _brightness(image, m, rng):
    return F.adjust_brightness(image, _enhance_factor(m, rng))


def _sharpness(image, m, rng):
    return F.adjust_sharpness(image, _enhance_factor(m, rng))


def _cutout(image, m, rng):
    h, w = image.shape[-2:]
    f = _fraction(m)
    if f == 0:
        return image
    side = max(1, int(round(MAX_CUTOUT_PX * f * _scale(min(h, w)))))
    cy, cx = rng.randrange(h), rng.randrange(w)
    y0, y1 = max(0, cy - side // 2), min(h, cy - side // 2 + side)
    x0, x1 = max(0, cx - side // 2), min(w, cx - side // 2 + side)
    out = image.clone()
    value = CUTOUT_FILL * _max_value(image)
    out[..., y0:y1, x0:x1] = int(value) if image.dtype == torch.uint8 else value
    return out


def _solarize_add(image, m, rng):
    f = _fraction(m)
    if image.dtype == torch.uint8:
        shifted = (image.to(torch.int16) + int(round(MAX_SOLARIZE_ADD * f))).clamp(0, 255).to(torch.uint8)
        return torch.where(image < 128, shifted, image)
    shifted = (image + MAX_SOLARIZE_ADD * f / 255.0).clamp(0.0, 1.0)
    return torch.where(image < 0.5, shifted, image)


# geometric ops: image and targets --------------------------------------------------------------
def _translate_x(image, targets, m, rng):
    px = _sign(rng) * MAX_TRANSLATE_PX * _fraction(m) * _scale(image.shape[-1])
    return _affine(image, targets, translate=(px, 0.0))


def _translate_y(image, targets, m, rng):
    px = _sign(rng) * MAX_TRANSLATE_PX * _fraction(m) * _scale(image.shape[-2])
    return _affine(image, targets, translate=(0.0, px))


def _shear_deg(m, rng) -> float:
    return math.degrees(math.atan(_sign(rng) * MAX_SHEAR * _fraction(m)))


def _shear_x(image, targets, m, rng):
    return _affine(image, targets, shear=(_shear_deg(m, rng), 0.0))


def _shear_y(image, targets, m, rng):
    return _affine(image, targets, shear=(0.0, _shear_deg(m, rng)))


def _rotate(image, targets, m, rng):
    return _affine(image, targets, angle=_sign(rng) * MAX_ROTATE_DEG * _fraction(m))


PhotometricFn = Callable[[torch.Tensor, float, random.Random], torch.Tensor]
GeometricFn = Callable[[torch.Tensor, Targets, float, random.Random], tuple]

_PHOTOMETRIC: dict[str, PhotometricFn] = {
    "AutoContrast": _auto_contrast,
    "Equalize": _equalize,
    "Invert": _invert,
    "Posterize": _posterize,
    "Solarize": _solarize,
    "Color": _color,
    "Contrast": _contrast,
    "Brightness": _brightness,
    "Sharpness": _sharpness,
    "Cutout": _cutout,
    "SolarizeAdd": _solarize_add,
}
_GEOMETRIC: dict[str, GeometricFn] = {
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "Rotate": _rotate,
}
OPS: tuple[str, ...] = tuple(_PHOTOMETRIC) + tuple(_GEOMETRIC)
GEOMETRIC_OPS = frozenset(_GEOMETRIC)


def _check_op(name: str) -> None:
    if name not in _PHOTOMETRIC and name not in _GEOMETRIC:
        raise TrainerError(f"unknown augmentation op {name!r}; valid: {', '.join(OPS)}")


def _as_boxes(boxes, canvas_size) -> tv_tensors.BoundingBoxes:
    if isinstance(boxes, tv_tensors.BoundingBoxes):
        return boxes
    t = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return tv_tensors.BoundingBoxes(t, format="XYXY", canvas_size=tuple(canvas_size))


def _as_mask(mask) -> tv_tensors.Mask:
    return mask if isinstance(mask, tv_tensors.Mask) else tv_tensors.Mask(torch.as_tensor(mask))


def _clamp_boxes(boxes: tv_tensors.BoundingBoxes, h: int, w: int) -> tv_tensors.BoundingBoxes:
    t = boxes.as_subclass(torch.Tensor).clone()
    t[:, 0::2] = t[:, 0::2].clamp(0, w)
    t[:, 1::2] = t[:, 1::2].clamp(0, h)
    return tv_tensors.wrap(t, like=boxes)


def _apply(name: str, image: torch.Tensor, boxes, mask, magnitude: float, rng: random.Random):
    """(image, boxes, mask) after op ``name``; boxes/mask are tv_tensors or ``None``."""
    if name in _PHOTOMETRIC:
        return _PHOTOMETRIC[name](image, magnitude, rng), boxes, mask
    targets = tuple(t for t in (boxes, mask) if t is not None)
    out, moved = _GEOMETRIC[name](image, targets, magnitude, rng)
    moved = list(moved)
    if boxes is not None:
        boxes = _clamp_boxes(moved.pop(0), *image.shape[-2:])
    if mask is not None:
        mask = moved.pop(0)
    return out, boxes, mask


def apply_op(
    name: str,
    image: torch.Tensor,
    boxes: Any = None,
    magnitude: float = 5,
    rng: random.Random | None = None,
    *,
    mask: Any = None,
) -> tuple:
    """Apply augmentation op ``name`` at ``magnitude`` (0..10) to ``image``, its ``boxes`` and
    its ``mask``.

    Returns ``(image, boxes)``, or ``(image, boxes, mask)`` when ``mask`` is given. Boxes come
    back as XYXY ``BoundingBoxes`` (or ``None``), clamped to the image but not filtered (the
    policies drop boxes that left the frame); masks as ``tv_tensors.Mask``. Photometric ops
    return boxes and masks unchanged.

    Raises:
        TrainerError: unknown op, or magnitude outside [0, 10].
    """
    _check_op(name)
    _fraction(magnitude)
    rng = rng or random.Random()
    image = torch.as_tensor(image)
    if boxes is not None:
        boxes = _as_boxes(boxes, image.shape[-2:])
    out_mask = _as_mask(mask) if mask is not None else None
    out, out_boxes, out_mask = _apply(name, image, boxes, out_mask, magnitude, rng)
    if mask is None:
        return out, out_boxes
    return out, out_boxes, out_mask


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


def _plain_like(moved: tv_tensors.Mask, original: Any) -> Any:
    return moved if isinstance(original, tv_tensors.Mask) else moved.as_subclass(torch.Tensor)


class _Policy:
    """Shared call logic.

    - ``policy(image)`` -> image;
    - ``policy(image, target)`` with a detection target mapping -> ``(image, target)``: its
      ``boxes`` and optional instance ``masks`` move with the pixels, boxes that left the frame
      are dropped with their per-box fields;
    - ``policy(image, mask)`` with a segmentation label map tensor ``(H, W)`` -> ``(image, mask)``.
    """

    min_box_size: float = 1.0

    def __init__(self, seed: int | None = None):
        self.rng = random.Random(seed)

    def ops_for_call(self) -> list[tuple[str, float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run(self, image, boxes, mask):
        for name, magnitude in self.ops_for_call():
            image, boxes, mask = _apply(name, image, boxes, mask, magnitude, self.rng)
        return image, boxes, mask

    def __call__(self, image: torch.Tensor, target: Mapping[str, Any] | torch.Tensor | None = None):
        image = torch.as_tensor(image)
        if target is None:
            return self._run(image, None, None)[0]
        if isinstance(target, torch.Tensor):  # segmentation label map
            out, _, mask = self._run(image, None, _as_mask(target))
            return out, _plain_like(mask, target)
        boxes = _as_boxes(target["boxes"], image.shape[-2:]) if "boxes" in target else None
        masks = _as_mask(target["masks"]) if "masks" in target else None
        image, boxes, masks = self._run(image, boxes, masks)
        out = dict(target)
        if masks is not None:
            out["masks"] = _plain_like(masks, target["masks"])
        if boxes is None:
            return image, out
        return image, _clean_target(out, boxes, self.min_box_size)


class RandAugmentPolicy(_Policy):
    """RandAugment: ``num_ops`` ops drawn with replacement from ``ops``, all at ``magnitude``."""

    def __init__(self, num_ops: int, magnitude: float, ops: Sequence[str] | None = None,
                 seed: int | None = None):
        from spaces.library.augment import DETECTION_OPS

        super().__init__(seed)
        if int(num_ops) != num_ops or num_ops < 0:
            raise TrainerError(f"RandAugment num_ops must be a non-negative integer, got {num_ops!r}")
        _fraction(magnitude)
        ops = tuple(DETECTION_OPS if ops is None else ops)
        if not ops:
            raise TrainerError(f"RandAugment needs at least one op; valid: {', '.join(OPS)}")
        for o in ops:
            _check_op(o)
        self.num_ops, self.magnitude, self.ops = int(num_ops), float(magnitude), ops

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
        _check_op(self.name)
        if not 0 <= self.probability <= 1:
            raise TrainerError(f"augmentation op probability must be in [0, 1], got {self.probability!r}")
        _fraction(self.magnitude)


class AutoAugmentPolicy(_Policy):
    """AutoAugment: each call picks one sub-policy uniformly and applies its ops in order,
    each with its own probability."""

    def __init__(self, sub_policies: Sequence[Sequence[AugOp | tuple]], seed: int | None = None):
        super().__init__(seed)
        subs = tuple(tuple(op if isinstance(op, AugOp) else AugOp(*op) for op in sp) for sp in sub_policies)
        if not subs:
            raise TrainerError("AutoAugmentPolicy needs at least one sub-policy")
        self.sub_policies = subs

    def ops_for_call(self) -> list[tuple[str, float]]:
        sub = self.rng.choice(self.sub_policies)
        return [(op.name, op.magnitude) for op in sub if self.rng.random() < op.probability]

    def __repr__(self) -> str:
        return f"AutoAugmentPolicy({len(self.sub_policies)} sub-policies)"


_TASK_SPACES = {"segmentation": ("randaugment_segmentation", "autoaugmentation_segmentation")}


def _space_of(kind: str | None, config: Mapping[str, Any], task: str | None) -> str | None:
    """The augmentation space named by ``kind`` or inferred from the parameters and task."""
    from spaces.library import augment as aug_space

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
    valid = aug_space.RANDAUGMENT_SPACES + aug_space.AUTOAUGMENT_SPACES
    if kind not in valid:
        raise TrainerError(f"augment must be 'none' or one of {', '.join(valid)}; got {kind!r}")
    if kind in ("randaugment", "autoaugment") and task in _TASK_SPACES:
        kind = _TASK_SPACES[task][0 if kind == "randaugment" else 1]
    return kind


def _auto_policy(config: Mapping[str, Any], seed: int | None) -> AutoAugmentPolicy:
    from spaces.library import augment as aug_space

    subs = []
    for i in range(aug_space.AA_SUB_POLICIES):
        ops = []
        for j in range(aug_space.AA_OPS_PER_SUB_POLICY):
            key = aug_space.aa_key(i, j, "type")
            if key in config:
                ops.append(AugOp(str(config[key]), float(config[aug_space.aa_key(i, j, "prob")]),
                                 float(config[aug_space.aa_key(i, j, "magnitude")])))
        if ops:
            subs.append(ops)
    if not subs:
        raise TrainerError("autoaugment config holds no sub-policy keys (sub_policy.<i>.op<j>.type)")
    return AutoAugmentPolicy(subs, seed=seed)


def policy_from_config(config: Mapping[str, Any], seed: int | None = None,
                       task: str | None = None) -> _Policy | None:
    """Build the augmentation policy described by ``config`` (``None`` when it names none).

    ``config["augment"]`` may name an augmentation space (``randaugment``,
    ``randaugment_detection``, ``randaugment_segmentation``, ``autoaugment``,
    ``autoaugmentation_detection``, ``autoaugmentation_segmentation``) or ``"none"``; without it
    the kind is inferred from the parameter names (``num_ops`` + ``magnitude``: RandAugment;
    ``sub_policy.<i>.op<j>.{type,prob,magnitude}``: AutoAugment). RandAugment draws from the
    named space's ``ops`` metadata; the generic names resolve by ``task`` (``segmentation``:
    the segmentation op set, otherwise the detection op set).
    """
    from spaces.library import augment as aug_space
    from spaces.library.registry import SPACES

    name = _space_of(config.get("augment"), config, task)
    if name is None:
        return None
    if SPACES.meta(name)["kind"] == "randaugment":
        return RandAugmentPolicy(int(config.get(aug_space.RA_NUM_OPS, 2)),
                                 float(config.get(aug_space.RA_MAGNITUDE, 5)),
                                 ops=SPACES.meta(name)["ops"], seed=seed)
    return _auto_policy(config, seed)
