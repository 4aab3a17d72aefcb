"""Architectures shared by the NAS trainer tests."""
from __future__ import annotations

from spaces.library import get_space


def shallow_mnasnet(width: float | None = None) -> dict:
    """The ``mnasnet`` space's defaults with every block at its fewest repeats and expansion 3
    (and ``width`` for every block when given): a fast architecture to train in tests."""
    space = get_space("mnasnet")
    cfg = space.default()
    for i in range(7):
        cfg[f"blocks.{i}.repeats"] = space[f"blocks.{i}.repeats"].values[0]
        cfg[f"blocks.{i}.expansion"] = 3
        if width is not None:
            cfg[f"blocks.{i}.width"] = width
    return cfg
