"""Augmentation search spaces: ``randaugment`` and ``autoaugment`` (Vertex AI NAS style).

Both are searched on a fixed, chosen architecture and trained to the end (no proxy task).
The op names below are those implemented by ``trainers/nas/augment_ops.py``; magnitudes are
integers 0..10 mapped linearly to each op's range there.

- ``randaugment``: ``num_ops`` (N) in 1..3 ops drawn with replacement from :data:`AUGMENT_OPS`,
  all applied at ``magnitude`` (M) in 1..10. Meant for grid search (30 points).
- ``autoaugment``: 5 sub-policies of 2 ops; each op has ``sub_policy.<i>.op<j>.type`` (one of the
  10 ops), ``.prob`` in {0, 0.1, ..., 1} and ``.magnitude`` in 0..10.
"""
from __future__ import annotations

from spaces.core import Categorical, Int, Ordinal, SearchSpace
from spaces.library.registry import register_space

AUGMENT_OPS: tuple[str, ...] = (
    "Equalize",
    "Solarize",
    "Color",
    "Cutout",
    "SolarizeAdd",
    "TranslateX",
    "TranslateY",
    "ShearX",
    "ShearY",
    "Rotate",
)
RA_NUM_OPS = "num_ops"
RA_MAGNITUDE = "magnitude"
AA_SUB_POLICIES = 5
AA_OPS_PER_SUB_POLICY = 2
PROBABILITIES: tuple[float, ...] = tuple(round(k / 10, 1) for k in range(11))


def aa_key(sub_policy: int, op: int, field: str) -> str:
    """Parameter name of one AutoAugment field, e.g. ``sub_policy.0.op1.magnitude``."""
    return f"sub_policy.{sub_policy}.op{op}.{field}"


@register_space("randaugment")
def randaugment(max_num_ops: int = 3, max_magnitude: int = 10) -> SearchSpace:
    """RandAugment (N ops at magnitude M): N in 1..max_num_ops, M in 1..max_magnitude."""
    return SearchSpace(
        [
            Int(RA_NUM_OPS, 1, max_num_ops, default=2),
            Int(RA_MAGNITUDE, 1, max_magnitude, default=5),
        ],
        name="randaugment",
    )


@register_space("autoaugment")
def autoaugment(
    num_sub_policies: int = AA_SUB_POLICIES, ops_per_sub_policy: int = AA_OPS_PER_SUB_POLICY
) -> SearchSpace:
    """AutoAugment policy: sub-policies x ops of (type, probability, magnitude)."""
    params = []
    for i in range(num_sub_policies):
        for j in range(ops_per_sub_policy):
            params += [
                Categorical(aa_key(i, j, "type"), AUGMENT_OPS),
                Ordinal(aa_key(i, j, "prob"), PROBABILITIES, default=0.5),
                Int(aa_key(i, j, "magnitude"), 0, 10, default=5),
            ]
    return SearchSpace(params, name="autoaugment")
