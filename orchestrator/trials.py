"""What the searchers, the trainable and the runner agree on about a trial (no Ray import).

- :data:`DUPLICATE_KEY`, :data:`REUSE_KEY`: keys a searcher adds to a configuration it answers
  from an earlier trial (the trainable reports the reused result instead of training; the keys
  never reach a trainer);
- :data:`RAY_RESULT_KEYS`: result keys Ray fills in itself, never part of a reused result;
- :func:`trial_dirname_for`: a trial's folder name inside the experiment folder;
- :func:`atomic_pickle`: the all-or-nothing state write behind every searcher's ``save``.
"""
from __future__ import annotations

import os
import pickle
from typing import Any

__all__ = ["DUPLICATE_KEY", "MARKER_KEYS", "RAY_RESULT_KEYS", "REUSE_KEY", "atomic_pickle",
           "trial_dirname_for"]

DUPLICATE_KEY = "_archtune_duplicate_of"
REUSE_KEY = "_archtune_reuse"
MARKER_KEYS = (DUPLICATE_KEY, REUSE_KEY)

RAY_RESULT_KEYS = frozenset({
    "done", "training_iteration", "trial_id", "date", "timestamp", "time_this_iter_s",
    "time_total_s", "pid", "hostname", "node_ip", "config", "time_since_restore",
    "iterations_since_restore", "checkpoint_dir_name", "should_checkpoint", "experiment_tag",
    "duplicate", "duplicate_of",
})


def trial_dirname_for(trial_id: str) -> str:
    """``trial_<id>``: short and stable (Ray's default folder name embeds the whole config)."""
    return f"trial_{trial_id}"


def atomic_pickle(obj: Any, path: str) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file and ``os.replace``, so a reader never
    sees a half-written file."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(obj, f)
    os.replace(tmp, path)
