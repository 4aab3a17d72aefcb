"""Procedural SYNTHETIC scenes of filled shapes, for detection and segmentation without downloads.

:func:`draw_scene` paints 1..``max_objects`` shapes on a textured background and returns the
image, the boxes, the labels and the per-pixel label map of one scene; it depends only on
``(seed, index)``. It is test and benchmark data: scores on it say nothing about real-world
quality.

What makes it a task that small detectors learn and that still separates architectures:

- classes differ by **shape only** (:data:`SHAPE_CLASSES`: rectangle, ellipse, triangle, cross);
  each object's colour is drawn independently of its class, and the background is a random
  colour gradient with pixel noise, so colour never tells the class;
- object sides are **log-uniform** between ``min_size`` and ``max_size`` (fractions of the image
  side), so objects spread over the FPN levels (at 128 px and 0.15..0.6: 19 to 77 px, strides
  8 to 32 are all needed; at 96 px: 14 to 58 px);
- objects may **occlude** each other (later ones are painted on top), but a placement that would
  hide more than ``max_occlusion`` of an earlier object's pixels (or leave a new object less
  than ``1 - max_occlusion`` visible) is redrawn, so every labelled object stays recognisable.
  Boxes are the full (amodal) object extent; the label map holds what is visible.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainers.errors import TrainerError

__all__ = ["SHAPE_CLASSES", "Scene", "draw_scene", "shape_mask"]

SHAPE_CLASSES: tuple[str, ...] = ("rectangle", "ellipse", "triangle", "cross")
_PLACEMENT_TRIES = 20


@dataclass(frozen=True)
class Scene:
    """One drawn scene.

    Attributes:
        image: float32 ``(3, S, S)`` in [0, 1].
        boxes: float32 ``(N, 4)`` absolute XYXY pixels, N >= 1.
        labels: int64 ``(N,)`` in ``0..len(SHAPE_CLASSES)-1``.
        label_map: int64 ``(S, S)``; 0 is background, ``label + 1`` where an object is visible.
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    label_map: np.ndarray


def shape_mask(label: int, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of shape class ``label`` filling ``box`` (XYXY pixels)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    inside = (xx >= x0) & (xx <= x1) & (yy >= y0) & (yy <= y1)
    if label == 0:
        return inside
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if label == 1:
        return ((xx - cx) / (w / 2)) ** 2 + ((yy - cy) / (h / 2)) ** 2 <= 1.0
    if label == 2:  # isosceles triangle: apex top-centre, base along the bottom edge
        frac = (yy - y0) / h
        return (frac >= 0) & (frac <= 1) & (np.abs(xx - cx) <= frac * w / 2)
    if label == 3:  # plus sign: two bars a third of the box thick
        return inside & ((np.abs(xx - cx) <= w / 6) | (np.abs(yy - cy) <= h / 6))
    raise TrainerError(f"shape class must be in 0..{len(SHAPE_CLASSES) - 1}, got {label!r}")


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    lo, hi = rng.uniform(0.0, 0.35, size=(2, 3, 1, 1))
    angle = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0.0, 1.0, size, dtype=np.float32)
    ramp = np.cos(angle) * t[None, :] + np.sin(angle) * t[:, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return lo + (hi - lo) * ramp[None] + rng.normal(0, 0.04, size=(3, size, size))


def draw_scene(seed: int, index: int, image_size: int, max_objects: int = 3,
               min_size: float = 0.15, max_size: float = 0.6, max_occlusion: float = 0.3,
               num_classes: int = len(SHAPE_CLASSES)) -> Scene:
    """Draw scene ``index`` of the set seeded by ``seed`` (see the module docstring).

    ``num_classes`` (1..4) uses the first classes of :data:`SHAPE_CLASSES`.
    """
    rng = np.random.default_rng([int(seed), int(index)])
    s = int(image_size)
    img = _background(rng, s)
    label_map = np.zeros((s, s), np.int64)
    owner = np.full((s, s), -1, np.int64)  # index of the object visible at each pixel
    areas: list[int] = []
    boxes, labels = [], []
    log_lo, log_hi = np.log(min_size * s), np.log(max_size * s)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(_PLACEMENT_TRIES):
            label = int(rng.integers(0, num_classes))
            side = float(np.exp(rng.uniform(log_lo, log_hi)))
            aspect = float(np.exp(rng.uniform(-0.4, 0.4)))
            w, h = min(side * aspect, s - 1.0), min(side / aspect, s - 1.0)
            x0, y0 = float(rng.uniform(0, s - w)), float(rng.uniform(0, s - h))
            mask = shape_mask(label, (x0, y0, x0 + w, y0 + h), s)
            if not mask.any():
                continue
            if _occlusion_ok(owner, mask, areas, max_occlusion):
                break
        else:
            continue
        colour = rng.uniform(0.4, 1.0, size=(3, 1, 1))
        img = np.where(mask[None], colour + rng.normal(0, 0.03, size=(3, 1, 1)), img)
        owner[mask] = len(boxes)
        label_map[mask] = label + 1
        areas.append(int(mask.sum()))
        boxes.append([x0, y0, x0 + w, y0 + h])
        labels.append(label)
    if not boxes:  # every placement collided: a lone object always fits
        return draw_scene(seed, index + 7_919_000, image_size, 1, min_size, max_size,
                          max_occlusion, num_classes)
    return Scene(np.clip(img, 0, 1).astype(np.float32), np.asarray(boxes, np.float32),
                 np.asarray(labels, np.int64), label_map)


def _occlusion_ok(owner: np.ndarray, mask: np.ndarray, areas: list[int],
                  max_occlusion: float) -> bool:
    """True if painting ``mask`` leaves every earlier object at least ``1 - max_occlusion``
    visible."""
    covered = owner[mask]
    covered = covered[covered >= 0]
    if covered.size == 0:
        return True
    visible = np.bincount(owner[owner >= 0], minlength=len(areas))
    lost = np.bincount(covered, minlength=len(areas))
    return bool(np.all(visible - lost >= (1 - max_occlusion) * np.asarray(areas)))
