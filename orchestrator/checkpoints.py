"""Restores never start from a checkpoint that is gone.

Ray Tune snapshots the experiment state at most every ~10 s, while each trial keeps only its
newest checkpoints. After a driver crash the snapshot can name a checkpoint that a newer one
has since replaced (and deleted); Ray would then fail the trial's restore on every retry. It
can also name no checkpoint for a trial that wrote some after the snapshot, which would train
that trial again from scratch. :class:`CheckpointFallback` runs when a trial's actor starts,
before Tune restores it, and points the trial at the newest checkpoint that exists in its
folder instead.

Every trial's checkpoint manager is also made :func:`tolerant`: after a crash the manager's
list can name folders an earlier driver already deleted, and Ray's manager raises when the
folder it evicts is gone, which fails the whole experiment.
"""
from __future__ import annotations

import hashlib
import json
import logging
import posixpath
import re
from pathlib import Path
from typing import Any

from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.tune import Callback

__all__ = ["MANIFEST", "CheckpointFallback", "TolerantCheckpointManager", "checkpoint_problem",
           "newest_checkpoint", "sibling_checkpoints", "tolerant", "write_manifest"]

log = logging.getLogger("archtune")
_CKPT = re.compile(r"^checkpoint_(\d+)$")
MANIFEST = ".archtune_manifest.json"


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha1").hexdigest()


def write_manifest(folder: str | Path) -> None:
    """Write :data:`MANIFEST` into ``folder``: the size and SHA-1 of every file in it, so a
    restore can tell a complete checkpoint from a truncated or corrupted one."""
    folder = Path(folder)
    files = {str(p.relative_to(folder)): [p.stat().st_size, _digest(p)]
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(files))


def checkpoint_problem(folder: str | Path) -> str | None:
    """Why the checkpoint in ``folder`` cannot be trusted (no :data:`MANIFEST`: the copy was
    cut off; a file missing, truncated or changed against it), or ``None`` when it matches.
    Every checkpoint a trainer hands to ``ctx.report`` gets a manifest."""
    folder = Path(folder)
    try:
        files = json.loads((folder / MANIFEST).read_text())
    except FileNotFoundError:
        return f"no {MANIFEST} (an incomplete copy)"
    except ValueError:
        return f"{MANIFEST} is unreadable"
    for rel, (size, digest) in files.items():
        p = folder / rel
        if not p.is_file():
            return f"{rel} is missing"
        if p.stat().st_size != size:
            return f"{rel} has {p.stat().st_size} bytes, {size} were written"
        if _digest(p) != digest:
            return f"{rel} changed since it was written"
    return None


def newest_checkpoint(fs: Any, trial_path: str) -> tuple[int, str] | None:
    """(index, path) of the newest ``checkpoint_NNNNNN`` folder in ``trial_path``."""
    import pyarrow.fs as pafs

    infos = fs.get_file_info(pafs.FileSelector(trial_path, allow_not_found=True))
    found = [(int(m.group(1)), i.path) for i in infos
             if i.type == pafs.FileType.Directory
             and (m := _CKPT.match(posixpath.basename(i.path)))]
    return max(found) if found else None


def sibling_checkpoints(ckpt: Any) -> list:
    """The other ``checkpoint_NNNNNN`` folders beside the Ray ``Checkpoint`` ``ckpt`` on its
    storage, newest first (``[]`` when the folder cannot be listed)."""
    import pyarrow.fs as pafs
    from ray.tune import Checkpoint

    folder = posixpath.dirname(ckpt.path.rstrip("/"))
    try:
        infos = ckpt.filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    except OSError:
        return []
    found = sorted((i.path for i in infos if i.type == pafs.FileType.Directory
                    and _CKPT.match(posixpath.basename(i.path))
                    and i.path.rstrip("/") != ckpt.path.rstrip("/")), reverse=True)
    return [Checkpoint(p, ckpt.filesystem) for p in found]


def _exists(fs: Any, path: str) -> bool:
    import pyarrow.fs as pafs

    return fs.get_file_info(path).type != pafs.FileType.NotFound


class TolerantCheckpointManager(_CheckpointManager):
    """Ray's checkpoint manager with two repairs. A folder registered again (a paused PBT
    trial's save hands back the checkpoint it last reported) replaces its old entry: two
    entries for one folder let eviction of the older delete the folder the newer names.
    Deleting an evicted checkpoint that is already gone is not an error, and the other
    evicted checkpoints are still deleted."""

    def register_checkpoint(self, checkpoint_result: Any) -> None:
        path = checkpoint_result.checkpoint.path
        self._checkpoint_results = [r for r in self._checkpoint_results
                                    if r.checkpoint.path != path]
        before = [*self._checkpoint_results, checkpoint_result]
        try:
            super().register_checkpoint(checkpoint_result)
        except FileNotFoundError as e:
            log.warning("checkpoint to delete was already gone: %s", e)
            kept = {id(r) for r in self._checkpoint_results}
            for r in before:
                if id(r) not in kept and r is not self._latest_checkpoint_result \
                        and _exists(r.checkpoint.filesystem, r.checkpoint.path):
                    r.checkpoint.filesystem.delete_dir(r.checkpoint.path)


def tolerant(trial: Any) -> TolerantCheckpointManager:
    """``trial``'s checkpoint manager, made a :class:`TolerantCheckpointManager` in place.
    Idempotent."""
    manager = trial.run_metadata.checkpoint_manager
    if type(manager) is _CheckpointManager:
        manager.__class__ = TolerantCheckpointManager
    return manager


class CheckpointFallback(Callback):
    """After a resume, before each trial's first restore, replace a missing checkpoint (or
    none at all, when the trial's folder holds some) with the newest one on storage.

    Only trials restored from the snapshot are checked: while an experiment runs, a trial may
    be pointed at a checkpoint still being written (a synchronous PBT exploit)."""

    def __init__(self) -> None:
        self._resumed = False
        self._checked: set[str] = set()

    def get_state(self) -> dict:
        return {"saved": True}  # non-empty, so Tune calls set_state on resume

    def set_state(self, state: dict) -> None:
        self._resumed = True

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        tolerant(trial)
        storage = getattr(trial, "storage", None)
        if not self._resumed or storage is None or trial.trial_id in self._checked:
            return
        self._checked.add(trial.trial_id)
        manager = trial.run_metadata.checkpoint_manager
        kept = [r for r in manager.best_checkpoint_results
                if _exists(r.checkpoint.filesystem, r.checkpoint.path)]
        current = manager.latest_checkpoint_result
        # after a PBT exploit the latest checkpoint lies in the cloned trial's folder
        if current is not None and _exists(current.checkpoint.filesystem,
                                           current.checkpoint.path):
            if len(kept) < len(manager.best_checkpoint_results):
                self._rebuild(trial, kept, current)  # Ray would fail deleting missing ones
            return
        newest = newest_checkpoint(storage.storage_filesystem, storage.trial_fs_path)
        if newest is None:
            return
        index, path = newest
        log.warning("trial %s: checkpoint %s is missing; restoring from %s",
                    trial.trial_id, current.checkpoint.path if current else None, path)
        latest = _fallback_result(current, index, path, storage)
        self._rebuild(trial, [r for r in kept if r.checkpoint.path != path], latest)
        # Tune's index names the last checkpoint (the next is written at +1): the next
        # checkpoint gets a new folder; reusing the name of one written after the snapshot
        # would let the manager delete the folder its newest entry points to
        storage.current_checkpoint_index = max(storage.current_checkpoint_index, index)

    @staticmethod
    def _rebuild(trial: Any, kept: list, latest: Any = None) -> None:
        old = trial.run_metadata.checkpoint_manager
        manager = TolerantCheckpointManager(checkpoint_config=old.checkpoint_config)
        own = [r for r in kept
               if latest is None or r.checkpoint.path != latest.checkpoint.path]
        for r in own:
            manager.register_checkpoint(r)
        if latest is not None and _in_folder(latest, trial.storage.trial_fs_path):
            manager.register_checkpoint(latest)
        elif latest is not None:
            # a cloned trial's checkpoint (PBT exploit) is restored from, never deleted here
            manager._latest_checkpoint_result = latest
        trial.run_metadata.checkpoint_manager = manager


def _in_folder(result: Any, folder: str) -> bool:
    return posixpath.dirname(result.checkpoint.path.rstrip("/")) == folder.rstrip("/")


def _fallback_result(current: Any, index: int, path: str, storage: Any) -> Any:
    """The training result Tune restores from: ``path``, with the iteration it was written at
    (archtune's trainers write one checkpoint per report)."""
    from ray.train._internal.session import _TrainingResult
    from ray.tune import Checkpoint

    fs = storage.storage_filesystem
    if current is not None:
        old = _CKPT.match(posixpath.basename(current.checkpoint.path))
        if _in_folder(current, storage.trial_fs_path) and old:
            old_index = int(old.group(1))
        else:  # cloned from another trial: its own checkpoints since then follow this index
            old_index = storage.current_checkpoint_index
        iteration = int(current.metrics.get("training_iteration", 0)) + index - old_index
        metrics = {**current.metrics, "training_iteration": iteration}
    else:
        metrics = {"training_iteration": index + 1}
    return _TrainingResult(checkpoint=Checkpoint(path, fs), metrics=metrics)
