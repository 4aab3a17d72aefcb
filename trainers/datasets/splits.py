"""Train/validation splits and stratified subsets (fixed by the *data* seed, independent of the
trial seed, so every trial of an experiment sees the same split)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["holdout", "source_target_split", "stratified_subset"]


def source_target_split(
    labels: Sequence[int] | np.ndarray, source_classes: Sequence[int] = (0, 1, 2, 3, 4)
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split a labelled set into a source task and a target task with disjoint classes.

    Returns ``(source_indices, source_labels, target_indices, target_labels)``; each task's labels
    are relabelled to ``0..k-1`` in increasing order of the original class. With the default
    ``source_classes`` on digits: source = digits 0-4, target = digits 5-9 relabelled 0-4.
    """
    labels = np.asarray(labels)
    source_set = sorted({int(c) for c in source_classes})
    is_source = np.isin(labels, source_set)
    target_set = sorted({int(c) for c in np.unique(labels[~is_source])})
    src_idx = np.flatnonzero(is_source)
    tgt_idx = np.flatnonzero(~is_source)
    src_map = {c: i for i, c in enumerate(source_set)}
    tgt_map = {c: i for i, c in enumerate(target_set)}
    src_lab = np.array([src_map[int(c)] for c in labels[src_idx]], dtype=np.int64)
    tgt_lab = np.array([tgt_map[int(c)] for c in labels[tgt_idx]], dtype=np.int64)
    return src_idx, src_lab, tgt_idx, tgt_lab


def holdout(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train_indices, val_indices) of ``labels``; falls back to unstratified when a
    class is too small to appear on both sides."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    _, counts = np.unique(labels, return_counts=True)
    n_classes = len(counts)
    n_val = int(np.ceil(val_fraction * len(labels)))
    can_stratify = counts.min() >= 2 and n_classes <= n_val <= len(labels) - n_classes
    stratify = labels if can_stratify else None
    tr, va = train_test_split(idx, test_size=val_fraction, stratify=stratify, random_state=seed)
    return np.sort(tr), np.sort(va)


def stratified_subset(
    labels: Sequence[int] | np.ndarray, fraction: float, seed: int = 0
) -> np.ndarray:
    """Positions (sorted) of a stratified ``fraction`` of ``labels``, at least one per class.

    ``fraction >= 1`` returns every position. Deterministic for a given ``seed``.
    """
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    n = len(labels)
    if fraction >= 1.0 or n == 0:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    k = max(len(classes), int(round(fraction * n)))
    if k >= n:
        return np.arange(n)
    stratify = labels if counts.min() >= 2 and n - k >= len(classes) else None
    keep, _ = train_test_split(np.arange(n), train_size=k, stratify=stratify, random_state=seed)
    if stratify is None:  # make sure every class keeps at least one image
        missing = set(classes.tolist()) - set(labels[keep].tolist())
        extra = [int(np.flatnonzero(labels == c)[0]) for c in sorted(missing)]
        keep = np.concatenate([keep, np.array(extra, dtype=keep.dtype)])
    return np.sort(keep)
