"""Augmentation search spaces (Vertex AI NAS catalogue names).

Each is searched on a fixed, chosen architecture and trained to the end (no proxy task). The op
names are those implemented by ``trainers/nas/augment_ops.py``; magnitudes are integers 0..10
mapped linearly to each op's range there. Geometric ops move boxes (detection) and masks
(segmentation) with the pixels.

- ``randaugment`` / ``randaugment_detection``: ``num_ops`` (N) in 1..3 ops drawn with
  replacement from :data:`DETECTION_OPS`, all applied at ``magnitude`` (M) in 1..10. Meant for
  grid search (30 points).
- ``randaugment_segmentation``: the same over :data:`SEGMENTATION_OPS`.
- ``autoaugment`` / ``autoaugmentation_detection``: 5 sub-policies of 2 ops; each op has
  ``sub_policy.<i>.op<j>.type`` (one of :data:`DETECTION_OPS`), ``.prob`` in {0, 0.1, ..., 1} and
  ``.magnitude`` in 0..10.
- ``autoaugmentation_segmentation``: the same over :data:`SEGMENTATION_OPS`.

Every space declares its op list as registry metadata ``ops`` (``SPACES.meta(name)["ops"]``),
which the trainer uses to build the policy.
"""
from __future__ import annotations

from typing import Callable, Sequence

from spaces.core import Categorical, Int, Ordinal, SearchSpace
from spaces.library.registry import register_space

__all__ = ["AUGMENT_OPS", "DETECTION_OPS", "SEGMENTATION_OPS", "ALL_OPS", "RANDAUGMENT_SPACES",
           "AUTOAUGMENT_SPACES", "aa_key", "randaugment", "autoaugment"]

# the RandAugment / AutoAugment-for-detection op set (boxes follow the geometric ops)
DETECTION_OPS: tuple[str, ...] = (
    "Equalize", "Solarize", "Color", "Cutout", "SolarizeAdd",
    "TranslateX", "TranslateY", "ShearX", "ShearY", "Rotate",
)
AUGMENT_OPS = DETECTION_OPS
# the segmentation op set (masks follow the geometric ops)
SEGMENTATION_OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Posterize", "Solarize", "Color", "Contrast",
    "Brightness", "Sharpness", "Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY",
)
ALL_OPS: tuple[str, ...] = DETECTION_OPS + tuple(o for o in SEGMENTATION_OPS
                                                 if o not in DETECTION_OPS)
RANDAUGMENT_SPACES = ("randaugment", "randaugment_detection", "randaugment_segmentation")
AUTOAUGMENT_SPACES = ("autoaugment", "autoaugmentation_detection",
                      "autoaugmentation_segmentation")
RA_NUM_OPS = "num_ops"
RA_MAGNITUDE = "magnitude"
AA_SUB_POLICIES = 5
AA_OPS_PER_SUB_POLICY = 2
PROBABILITIES: tuple[float, ...] = tuple(round(k / 10, 1) for k in range(11))


def aa_key(sub_policy: int, op: int, field: str) -> str:
    """Parameter name of one AutoAugment field, e.g. ``sub_policy.0.op1.magnitude``."""
    return f"sub_policy.{sub_policy}.op{op}.{field}"


def _randaugment(name: str, max_num_ops: int, max_magnitude: int) -> SearchSpace:
    return SearchSpace(
        [
            Int(RA_NUM_OPS, 1, max_num_ops, default=2),
            Int(RA_MAGNITUDE, 1, max_magnitude, default=5),
        ],
        name=name,
    )


def _autoaugment(name: str, ops: Sequence[str], num_sub_policies: int,
                 ops_per_sub_policy: int) -> SearchSpace:
    params = []
    for i in range(num_sub_policies):
        for j in range(ops_per_sub_policy):
            params += [
                Categorical(aa_key(i, j, "type"), tuple(ops)),
                Ordinal(aa_key(i, j, "prob"), PROBABILITIES, default=0.5),
                Int(aa_key(i, j, "magnitude"), 0, 10, default=5),
            ]
    return SearchSpace(params, name=name)


def _register_randaugment(name: str, ops: tuple[str, ...], doc: str) -> Callable[..., SearchSpace]:
    def factory(max_num_ops: int = 3, max_magnitude: int = 10) -> SearchSpace:
        return _randaugment(name, max_num_ops, max_magnitude)
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_space(name, ops=ops, kind="randaugment")(factory)


def _register_autoaugment(name: str, ops: tuple[str, ...], doc: str) -> Callable[..., SearchSpace]:
    def factory(num_sub_policies: int = AA_SUB_POLICIES,
                ops_per_sub_policy: int = AA_OPS_PER_SUB_POLICY) -> SearchSpace:
        return _autoaugment(name, ops, num_sub_policies, ops_per_sub_policy)
    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return register_space(name, ops=ops, kind="autoaugment")(factory)


randaugment = _register_randaugment(
    "randaugment", DETECTION_OPS,
    "RandAugment (N ops at magnitude M): N in 1..max_num_ops, M in 1..max_magnitude.")
randaugment_detection = _register_randaugment(
    "randaugment_detection", DETECTION_OPS,
    "RandAugment over the box-aware detection ops (:data:`DETECTION_OPS`).")
randaugment_segmentation = _register_randaugment(
    "randaugment_segmentation", SEGMENTATION_OPS,
    "RandAugment over the mask-aware segmentation ops (:data:`SEGMENTATION_OPS`).")
autoaugment = _register_autoaugment(
    "autoaugment", DETECTION_OPS,
    "AutoAugment policy: sub-policies x ops of (type, probability, magnitude).")
autoaugmentation_detection = _register_autoaugment(
    "autoaugmentation_detection", DETECTION_OPS,
    "AutoAugment over the box-aware detection ops (:data:`DETECTION_OPS`).")
autoaugmentation_segmentation = _register_autoaugment(
    "autoaugmentation_segmentation", SEGMENTATION_OPS,
    "AutoAugment over the mask-aware segmentation ops (:data:`SEGMENTATION_OPS`).")
