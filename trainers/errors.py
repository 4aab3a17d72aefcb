"""Errors of the trainers layer (part of the one :class:`~spaces.errors.ArchtuneError` family)."""
from __future__ import annotations

from spaces.errors import ArchtuneError

__all__ = ["TrainerError"]


class TrainerError(ArchtuneError, ValueError):
    """An invalid trainer configuration, model, dataset or checkpoint given by the user."""
