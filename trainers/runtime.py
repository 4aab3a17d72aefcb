"""Process-level run settings every trainer shares: the device and the global seeds."""
from __future__ import annotations

import random

import numpy as np
import torch

from trainers.errors import TrainerError

__all__ = ["resolve_device", "seed_everything"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators with ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available else CPU; otherwise ``torch.device(name)`` (checked).

    Raises:
        TrainerError: an unparsable name, or CUDA requested where it is not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise TrainerError(f"device: expected 'auto', 'cpu' or 'cuda[:N]', got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainerError(f"device: {name!r} requested but CUDA is not available")
    return device
