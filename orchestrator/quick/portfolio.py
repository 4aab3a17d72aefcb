"""Warm-start portfolio of the ``quick`` searcher: configurations proposed before any model.

- :data:`DEFAULT_RECIPE`: the documented good fine-tuning recipe (AdamW 1e-3, cosine, no
  warm-up, no augmentation or mixing, all regularisers off, nothing frozen).
- :func:`family_recipes`: that recipe once per model of the space (one per model family).
- :data:`RECORDED_BEST`: configurations that ranked best on average across the recorded tasks
  of ``bench/data`` (made by :func:`best_across_tables`; the benchmark rebuilds it leaving the
  scored task out, so a task is never warm-started from its own table).

The portfolio is data, not code paths: a space without some parameter simply ignores it, and
:class:`~orchestrator.quick.policy.QuickPolicy` drops items that the space rejects.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = ["DEFAULT_RECIPE", "RECORDED_BEST", "family_recipes", "best_across_tables",
           "default_portfolio"]

DEFAULT_RECIPE: dict[str, Any] = {
    "model": "resnet10t", "pct-to-freeze": 0.0, "layer-decay": 0.0, "linear-probing": False,
    "stoch-norm": False, "sp-reg": 0.0, "delta-reg": 0.0, "bss-reg": 0.0, "cotuning-reg": 0.0,
    "mixup": 0.0, "mixup-prob": 0.0, "cutmix": 0.0, "drop": 0.0, "smoothing": 0.0,
    "clip-grad": 0, "amp": False, "opt": "adamw", "opt-betas": "0.9 0.999", "lr": 0.001,
    "warmup_epochs": 0, "warmup-lr": 0.0, "weight-decay": 0.0001, "batch-size": 32,
    "sched": "cosine", "data-augmentation": "none",
}

#: ``best_across_tables`` of the three tables in ``bench/data`` (digits, digits_transfer,
#: photo_crops, as recorded on 2026-12-07), k=5, minus the default recipe (already first);
#: the benchmark does not use this list but rebuilds it per task from the other tables only
RECORDED_BEST: list[dict[str, Any]] = [
    {"amp": False, "batch-size": 16, "bss-reg": 0.0001, "clip-grad": 10, "cotuning-reg": 1.0,
     "cutmix": 4.0, "data-augmentation": "random-augment", "delta-reg": 0.0001, "drop": 0.1,
     "layer-decay": 0.65, "linear-probing": False, "lr": 0.01, "mixup": 0.2, "mixup-prob": 0.75,
     "model": "test_efficientnet", "opt": "adamw", "opt-betas": "0.9 0.999", "pct-to-freeze":
     0.0, "ra-magnitude": 9, "ra-num-ops": 2, "sched": "multistep", "decay-epochs": 10,
     "decay-rate": 0.5, "smoothing": 0.05, "sp-reg": 0.001, "stoch-norm": False, "warmup-lr":
     1e-05, "warmup_epochs": 0, "weight-decay": 1e-05},
    {"amp": False, "batch-size": 16, "bss-reg": 0.001, "clip-grad": 1, "cotuning-reg": 4.0,
     "cutmix": 0.5, "data-augmentation": "none", "delta-reg": 0.0001, "drop": 0.3, "layer-decay":
     0.75, "linear-probing": False, "lr": 0.01, "mixup": 0.0, "mixup-prob": 1.0, "model":
     "test_convnext", "opt": "adam", "opt-betas": "0.0 0.99", "pct-to-freeze": 0.4, "sched":
     "cosine", "smoothing": 0.1, "sp-reg": 0.1, "stoch-norm": True, "warmup-lr": 1e-05,
     "warmup_epochs": 10, "weight-decay": 1e-05},
    {"amp": False, "batch-size": 32, "bss-reg": 0.01, "clip-grad": 10, "cotuning-reg": 0.0,
     "cutmix": 0.25, "data-augmentation": "auto-augment", "auto-augment": "v0", "delta-reg":
     0.0001, "drop": 0.4, "layer-decay": 0.0, "linear-probing": False, "lr": 0.01, "mixup": 2.0,
     "mixup-prob": 0.5, "model": "resnet10t", "opt": "adamp", "opt-betas": "0.9 0.99",
     "pct-to-freeze": 0.2, "sched": "multistep", "decay-epochs": 20, "decay-rate": 0.1,
     "smoothing": 0.1, "sp-reg": 0.0001, "stoch-norm": True, "warmup-lr": 1e-06, "warmup_epochs":
     10, "weight-decay": 0.1},
    {"amp": False, "batch-size": 128, "bss-reg": 0.0001, "clip-grad": 0, "cotuning-reg": 0.5,
     "cutmix": 0.25, "data-augmentation": "trivial-augment", "delta-reg": 0.1, "drop": 0.4,
     "layer-decay": 0.0, "linear-probing": False, "lr": 0.01, "mixup": 8.0, "mixup-prob": 0.25,
     "model": "resnet10t", "opt": "adamw", "opt-betas": "0.9 0.99", "pct-to-freeze": 0.6,
     "sched": "step", "decay-epochs": 10, "decay-rate": 0.5, "smoothing": 0.1, "sp-reg": 0.0,
     "stoch-norm": False, "warmup-lr": 1e-05, "warmup_epochs": 0, "weight-decay": 0.0001},
]


def family_recipes(space: Any, first: str | None = None) -> list[dict[str, Any]]:
    """:data:`DEFAULT_RECIPE` with each model of the space's ``model`` parameter (``first``, by
    default the recipe's own model, leads); just the recipe when the space has no models."""
    if "model" not in space:
        return [dict(DEFAULT_RECIPE)]
    p = space["model"]
    models = list(getattr(p, "choices", None) or getattr(p, "sequence", None) or [])
    if not models and hasattr(p, "value"):
        models = [p.value]
    lead = first or DEFAULT_RECIPE["model"]
    models.sort(key=lambda m: m != lead)
    return [{**DEFAULT_RECIPE, "model": m} for m in models]


def best_across_tables(tables: Sequence[Mapping[str, Any]], k: int = 4,
                       exclude_task: str | None = None) -> list[dict[str, Any]]:
    """The ``k`` configurations with the best mean rank (final metric, per-table percentile;
    a failure ranks last) over the tables other than ``exclude_task``. Each table is a recorded
    table dict (``task``, ``rows`` with ``config``, ``val_acc``, ``error``)."""
    scores: dict[str, list[float]] = {}
    configs: dict[str, dict] = {}
    used = [t for t in tables if t.get("task") != exclude_task]
    for t in used:
        finals = np.array([_final(r) for r in t["rows"]])
        order = finals.argsort().argsort() / max(1, len(finals) - 1)
        for r, pct in zip(t["rows"], order):
            key = repr(sorted(r["config"].items()))
            configs.setdefault(key, dict(r["config"]))
            scores.setdefault(key, []).append(float(pct))
    ranked = sorted(scores, key=lambda key: -float(np.mean(scores[key])))
    return [configs[key] for key in ranked[:k]]


def _final(row: Mapping[str, Any]) -> float:
    if row.get("error") or not row.get("val_acc"):
        return -1.0
    return float(max(row["val_acc"]))


def default_portfolio(space: Any, recorded: Iterable[Mapping[str, Any]] | None = None,
                      n_families: int = 3) -> list[dict[str, Any]]:
    """The recipe on its own model first, then ``recorded`` (default :data:`RECORDED_BEST`),
    then the recipe on up to ``n_families - 1`` other models of the space."""
    recipes = family_recipes(space)
    best = list(RECORDED_BEST if recorded is None else recorded)
    return recipes[:1] + best + recipes[1:n_families]
