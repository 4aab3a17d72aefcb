"""Errors of the orchestrator layer, and the whole archtune error family in one place.

``from orchestrator.errors import ArchtuneError, SpaceError, TrainerError, SpecError``.
"""
from __future__ import annotations

from spaces.errors import ArchtuneError, SpaceError
from trainers.errors import TrainerError

__all__ = ["ArchtuneError", "SpaceError", "SpecError", "TrainerError"]


class SpecError(ArchtuneError, ValueError):
    """An invalid experiment file or experiment specification."""
