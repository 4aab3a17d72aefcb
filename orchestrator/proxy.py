"""Proxy-task selection (Vertex AI NAS protocol, REFERENCE.md section 3). Pure logic: no Ray.

K reference architectures are fully trained (their final scores are the *reference scores*).
Each proxy candidate (smaller data fraction, image size, width, fewer epochs) trains the same
K architectures and reports a score per validation step. At every step the Kendall tau between
the candidate's scores and the reference scores is computed over the models valid at that step;
a candidate *succeeds* at the first step where tau >= ``target_tau``. The successful candidate
with the lowest training cost (``cost`` per step x steps to success) is chosen; its stopping
step is the proxy length.

    choice = select_proxy(
        [ProxyCandidate({"data_fraction": 0.25}, scores=[[.2, .5], [.3, .6], ...], cost=0.25)],
        reference_scores=[0.81, 0.86, ...])
    choice.settings, choice.steps, choice.tau, choice.cost
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from spaces.errors import ArchtuneError

__all__ = ["ProxyCandidate", "ProxyChoice", "VarianceCheck", "kendall_tau", "select_proxy",
           "variance_check"]


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b of two equally long score lists (``scipy.stats.kendalltau``).

    Returns ``nan`` when it is undefined (fewer than 2 values, or one list constant)."""
    if len(x) != len(y):
        raise ValueError(f"kendall_tau needs equally long lists, got {len(x)} and {len(y)}")
    if len(x) < 2:
        return math.nan
    from scipy.stats import kendalltau

    tau = float(kendalltau(list(x), list(y)).statistic)
    return tau


@dataclass(frozen=True)
class VarianceCheck:
    """Outcome of :func:`variance_check`; truthy when the check passed."""

    cv: float
    max_cv: float
    passed: bool

    def __bool__(self) -> bool:
        return self.passed


def variance_check(scores: Sequence[float], max_cv: float = 0.4) -> VarianceCheck:
    """Coefficient of variation (sample std / |mean|) of repeated trainings of one model.

    The proxy protocol requires ``cv <= max_cv`` (default 0.4); a noisier setup cannot rank
    models reliably.

    Raises:
        ArchtuneError: fewer than 2 finite scores, a zero mean, or ``max_cv <= 0``.
    """
    if not max_cv > 0:
        raise ArchtuneError(f"variance check: max_cv must be > 0, got {max_cv!r}")
    vals = [float(v) for v in scores if _finite(v)]
    if len(vals) < 2:
        raise ArchtuneError(f"variance check needs at least 2 finite scores of repeated "
                            f"trainings, got {list(scores)!r}")
    mean = sum(vals) / len(vals)
    if mean == 0:
        raise ArchtuneError(f"variance check: the mean score is 0 (scores {vals}); the "
                            f"coefficient of variation is undefined")
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    cv = std / abs(mean)
    return VarianceCheck(cv=cv, max_cv=float(max_cv), passed=cv <= max_cv)


@dataclass(frozen=True)
class ProxyCandidate:
    """One proxy setting evaluated on the K reference models.

    Args:
        settings: the proxy's run settings (``data_fraction``, ``image_size``, ``width_scale``,
            ``epochs``, ...), carried through to :class:`ProxyChoice` unchanged.
        scores: ``scores[k][s]`` is model k's score at validation step s+1, in the same model
            order as the reference scores. ``None``/``nan``, or a missing (short) row tail, mark
            a model as invalid at that step (failed or stopped).
        cost: training cost of one step (any unit, compared across candidates); the cost of the
            candidate is ``cost * steps`` where steps is its stopping step.
    """

    settings: Mapping[str, Any]
    scores: Sequence[Sequence[float | None]]
    cost: float

    def __post_init__(self) -> None:
        if not _finite(self.cost) or self.cost < 0:
            raise ArchtuneError(f"proxy candidate {dict(self.settings)}: cost must be a finite "
                                f"number >= 0, got {self.cost!r}")

    @property
    def num_steps(self) -> int:
        return max((len(r) for r in self.scores), default=0)


@dataclass(frozen=True)
class ProxyChoice:
    """The selected proxy task.

    Attributes:
        settings: the chosen candidate's settings.
        steps: its stopping step (the proxy length, in validation steps / epochs).
        tau: Kendall tau at that step.
        cost: its training cost (``cost per step * steps``).
        table: one row per candidate, in the given order: ``settings``, ``taus`` (per step,
            ``None`` where too few models were valid), ``best_tau``, ``best_step``,
            ``stop_step`` (``None``: never reached the target), ``cost`` (at ``stop_step``,
            else ``None``), ``chosen``.
    """

    settings: Mapping[str, Any]
    steps: int
    tau: float
    cost: float
    table: tuple[Mapping[str, Any], ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "steps": self.steps, "tau": self.tau,
                "cost": self.cost, "table": [dict(r) for r in self.table]}


def _taus(cand: ProxyCandidate, reference: Sequence[float], min_valid: int,
          min_valid_fraction: float) -> list[float | None]:
    k = len(reference)
    if len(cand.scores) != k:
        raise ArchtuneError(f"proxy candidate {dict(cand.settings)}: scores for "
                            f"{len(cand.scores)} models, but {k} reference scores")
    out: list[float | None] = []
    for s in range(cand.num_steps):
        xs, ys = [], []
        for row, ref in zip(cand.scores, reference):
            v = row[s] if s < len(row) else None
            if _finite(v) and _finite(ref):
                xs.append(float(v))
                ys.append(float(ref))
        if len(xs) < min_valid or len(xs) < min_valid_fraction * k:
            out.append(None)
            continue
        tau = kendall_tau(xs, ys)
        out.append(None if math.isnan(tau) else tau)
    return out


def select_proxy(candidates: Sequence[ProxyCandidate], reference_scores: Sequence[float], *,
                 target_tau: float = 0.65, min_valid: int = 5,
                 min_valid_fraction: float = 0.7) -> ProxyChoice:
    """Choose the cheapest candidate whose ranking of the K models reaches ``target_tau``.

    A step counts only when at least ``min_valid`` models and at least ``min_valid_fraction``
    of the K models have a finite score there (and a finite reference score). Ties in cost go
    to the higher tau, then to the earlier candidate.

    Raises:
        ArchtuneError: bad arguments, or no candidate reached the target (the message lists
            each candidate's best tau and step).
    """
    if not -1 <= target_tau <= 1:
        raise ArchtuneError(f"target_tau must be in [-1, 1], got {target_tau!r}")
    if not isinstance(min_valid, int) or min_valid < 2:
        raise ArchtuneError(f"min_valid must be an integer >= 2, got {min_valid!r}")
    if not 0 <= min_valid_fraction <= 1:
        raise ArchtuneError(f"min_valid_fraction must be in [0, 1], got {min_valid_fraction!r}")
    if not candidates:
        raise ArchtuneError("select_proxy needs at least one proxy candidate")
    rows: list[dict[str, Any]] = []
    best: tuple[float, float, int] | None = None  # (cost, -tau, index)
    for i, cand in enumerate(candidates):
        taus = _taus(cand, reference_scores, min_valid, min_valid_fraction)
        valid = [(t, s + 1) for s, t in enumerate(taus) if t is not None]
        best_tau, best_step = max(valid, key=lambda p: (p[0], -p[1])) if valid else (None, None)
        stop = next((s for t, s in valid if t >= target_tau), None)
        cost = float(cand.cost) * stop if stop is not None else None
        rows.append({"settings": dict(cand.settings), "taus": taus, "best_tau": best_tau,
                     "best_step": best_step, "stop_step": stop, "cost": cost, "chosen": False})
        if stop is not None:
            key = (cost, -taus[stop - 1], i)
            if best is None or key < best:
                best = key
    if best is None:
        lines = [f"  {r['settings']}: best tau "
                 + (f"{r['best_tau']:.3f} at step {r['best_step']}" if r["best_tau"] is not None
                    else "n/a (too few valid models at every step)")
                 for r in rows]
        raise ArchtuneError(
            f"no proxy candidate reached Kendall tau >= {target_tau} against the "
            f"{len(reference_scores)} reference models (min_valid={min_valid}, "
            f"min_valid_fraction={min_valid_fraction}):\n" + "\n".join(lines)
            + "\nTry larger proxies (more data, epochs, image size or width), more reference "
              "models, or a lower target_tau.")
    idx = best[2]
    rows[idx]["chosen"] = True
    r = rows[idx]
    return ProxyChoice(settings=dict(candidates[idx].settings), steps=int(r["stop_step"]),
                       tau=float(r["taus"][r["stop_step"] - 1]), cost=float(r["cost"]),
                       table=tuple(rows))
