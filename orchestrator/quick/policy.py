"""The decisions of archtune's ``quick`` searcher, free of Ray (a simulator or a test can drive
it directly; :class:`orchestrator.quick.searcher.QuickSearcher` adapts it to Ray Tune).

What it does, in order:

1. **Warm start**: the portfolio (known-good configurations, see
   :mod:`orchestrator.quick.portfolio`) is proposed first, each fitted into the space (fixed
   values win, invalid values fall back to the space's default) and deduplicated.
2. **Learning-curve model**: an extra-trees ensemble is fitted on *every* reported
   ``(configuration, epoch) -> metric`` point, epoch as an input, so trials a scheduler stopped
   early still teach it; it predicts each candidate's value at ``max_epochs`` with a spread
   (the trees' disagreement).
3. **Acquisition**: expected improvement over the incumbent, times the probability that the
   candidate runs (failure model), divided by its predicted epoch cost to the power
   ``cost_power`` (cost model: mean observed epoch seconds per model and batch size, then per
   model, then overall). Candidates: fresh samples, mutations of the best configurations and
   TPE proposals (:mod:`orchestrator.quick.tpe`: multivariate, grouped, constant liar).
   Candidates closer than ``min_distance`` to a configuration already proposed are dropped
   first: a near-duplicate of a trained configuration mostly re-measures its training noise,
   so the budget goes to configurations that can teach the model something new.
4. **Failure awareness**: a parameter value that failed ``fail_limit`` times and never ran is
   excluded from then on; other values carry a smoothed failure rate.
5. **No duplicates**: a ``config_id`` is proposed at most once.

The state (:meth:`get_state` / :meth:`set_state`) is plain data; the model is refitted from it.
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

__all__ = ["QuickPolicy"]


class QuickPolicy:
    """Propose configurations of ``space`` and learn from their (partial) learning curves.

    Args:
        space: an archtune ``SearchSpace`` (fixed values already applied).
        max_epochs: the epoch budget of a full training (the fidelity predicted).
        mode: ``"max"`` or ``"min"`` for the metric.
        seed: seeds every random choice.
        portfolio: configurations proposed first, in order.
        n_candidates: fresh random candidates scored per proposal.
        cost_power: 0 ignores cost; 1 ranks by improvement per second.
        fail_limit: failures (with no success) after which a parameter value is excluded.
        min_observed: finished trials needed before the model decides (random before that).
        refit_every: the model is refitted once the observed points grew by this fraction
            (0, the default, = after every new point; a resumed search then decides exactly
            as the uninterrupted one would, which a lazier refit cannot promise).
        tpe: optional ``proposer(policy, n) -> list[config]`` adding TPE candidates.
        min_distance: a model candidate must lie at least this far from every configuration
            proposed so far, in units of the median distance between two random
            configurations of the space (encoded, each column scaled to [0, 1]); when no
            candidate is that far, the most distant quarter competes. ``0`` disables it;
            must be >= 0.
    """

    def __init__(self, space: Any, *, max_epochs: int, mode: str = "max", seed: int | None = 0,
                 portfolio: Iterable[Mapping[str, Any]] = (), n_candidates: int = 64,
                 cost_power: float = 0.5, fail_limit: int = 2, min_observed: int = 3,
                 refit_every: float = 0.0, tpe: Any = None, min_distance: float = 0.7) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        if int(max_epochs) < 1:
            raise ValueError(f"max_epochs must be >= 1, got {max_epochs!r}")
        if not float(min_distance) >= 0:
            raise ValueError(f"min_distance must be >= 0, got {min_distance!r}")
        self.space = space
        self.max_epochs = int(max_epochs)
        self.sign = 1.0 if mode == "max" else -1.0
        self.rng = np.random.default_rng(seed)
        self.n_candidates = int(n_candidates)
        self.cost_power = float(cost_power)
        self.fail_limit = int(fail_limit)
        self.min_observed = int(min_observed)
        self.refit_every = float(refit_every)
        self.tpe = tpe
        self.min_distance = float(min_distance)
        self._scale: tuple[np.ndarray, np.ndarray, float] | None = None
        self.portfolio = self._fit_portfolio(portfolio)
        self.trials: dict[str, dict] = {}   # trial id -> {"config", "cid", "curve", "secs", "state"}
        self.seen: set[str] = set()
        self.next_portfolio = 0
        self.counts = {"portfolio": 0, "model": 0, "random": 0, "excluded": 0}
        self._model: Any = None
        self._fitted_on = -1
        self._stats: dict | None = None
        self._enc: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ portfolio
    def _fit_portfolio(self, items: Iterable[Mapping[str, Any]]) -> list[dict]:
        out, ids = [], set()
        base = self.space.default()
        for item in items:
            cfg = dict(base)
            for k, v in item.items():
                if k in self.space and self.space[k].contains(v):
                    cfg[k] = v
            cfg = self._valid(cfg)
            if cfg is None:
                continue
            cid = self.space.config_id(cfg)
            if cid not in ids:
                ids.add(cid)
                out.append(cfg)
        return out

    def _valid(self, cfg: Mapping[str, Any]) -> dict | None:
        """``cfg`` made canonical (constants set, inactive values dropped), or ``None``."""
        try:
            full = dict(cfg)
            for name in self.space.names:
                p = self.space[name]
                if type(p).__name__ == "Constant":
                    full[name] = p.value
            out = self.space.canonical(full)
        except Exception:  # noqa: BLE001 - a portfolio item the space cannot hold
            return None
        return out if self.space.is_valid(out) else None

    # ------------------------------------------------------------------ proposing
    def suggest(self, trial_id: str) -> dict:
        """The next configuration (never one proposed before); registered as ``trial_id``."""
        cfg, how = None, "random"
        while self.next_portfolio < len(self.portfolio) and cfg is None:
            cand = self.portfolio[self.next_portfolio]
            self.next_portfolio += 1
            if self.space.config_id(cand) not in self.seen and not self._excluded(cand):
                cfg, how = cand, "portfolio"
        if cfg is None and self._n_finished() >= self.min_observed:
            cfg = self._best_candidate()
            how = "model" if cfg is not None else how
        if cfg is None:
            cfg = self._fresh(1, allow_excluded=False)[0]
        self.counts[how] += 1
        cid = self.space.config_id(cfg)
        self.seen.add(cid)
        self.trials[trial_id] = {"config": dict(cfg), "cid": cid, "curve": {}, "secs": [],
                                 "state": "running"}
        self._stats = None
        return dict(cfg)

    def _fresh(self, n: int, allow_excluded: bool = True) -> list[dict]:
        out: list[dict] = []
        for _ in range(50):
            for c in self.space.sample(self.rng, n=max(n, 8)):
                c = self.space.canonical(c)
                if self.space.config_id(c) in self.seen:
                    continue
                if not allow_excluded and self._excluded(c):
                    self.counts["excluded"] += 1
                    continue
                out.append(c)
                if len(out) >= n:
                    return out
        return out or [self.space.canonical(self.space.sample(self.rng))]

    def _candidates(self) -> list[dict]:
        cands = self._fresh(self.n_candidates)
        top = sorted((t for t in self.trials.values() if t["curve"]),
                     key=lambda t: -self.sign * t["curve"][max(t["curve"])])[:4]
        for t in top:
            for _ in range(8):
                cands.append(self.space.canonical(
                    self.space.mutate(t["config"], prob=0.15, rng=self.rng)))
        if self.tpe is not None:
            cands.extend(self.tpe(self, 2))
        seen, out = set(self.seen), []
        for c in cands:
            cid = self.space.config_id(c)
            if cid in seen:
                continue
            if self._excluded(c):
                self.counts["excluded"] += 1
                continue
            seen.add(cid)
            out.append(c)
        return self._novel(out)

    def _novel(self, cands: list[dict]) -> list[dict]:
        """``cands`` at least ``min_distance`` from every proposed configuration (the most
        distant quarter when fewer pass); all of them when the filter is off or nothing was
        proposed yet."""
        if self.min_distance <= 0 or not cands or not self.trials:
            return cands
        dist = self.distance(cands)
        cut = min(self.min_distance, float(np.quantile(dist, 0.75)))
        return [c for c, d in zip(cands, dist) if d >= cut]

    def distance(self, cfgs: list[Mapping[str, Any]]) -> np.ndarray:
        """Each config's distance to the nearest proposed configuration, in units of the
        median distance between two random configurations (``inf`` before any proposal)."""
        if not self.trials:
            return np.full(len(cfgs), np.inf)
        lo, span, unit = self._distance_scale()
        trials = list(self.trials.values())
        a = (self._encode(cfgs) - lo) / span
        b = (self._encode([t["config"] for t in trials], [t["cid"] for t in trials]) - lo) / span
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1) / unit

    def _distance_scale(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(column minimum, column span, median pairwise distance) of 128 random configs,
        drawn from a fixed seed so that a resumed search measures distances identically."""
        if self._scale is None:
            ref = np.random.default_rng(0)
            z = self._encode([self.space.canonical(c) for c in self.space.sample(ref, n=128)])
            lo = z.min(axis=0)
            span = np.maximum(z.max(axis=0) - lo, 1e-9)
            z = (z - lo) / span
            d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
            unit = float(np.median(d[np.triu_indices(len(z), 1)]))
            self._scale = (lo, span, max(unit, 1e-9))
        return self._scale

    def _best_candidate(self) -> dict | None:
        cands = self._candidates()
        if not cands:
            return None
        if self.rng.random() < 0.1:  # keep exploring a little
            return cands[int(self.rng.integers(len(cands)))]
        mu, sd = self.predict(cands)
        best = self.incumbent()
        z = (mu - best) / np.maximum(sd, 1e-6)
        ei = np.maximum(sd, 1e-6) * (z * _norm_cdf(z) + _norm_pdf(z))
        ei = np.maximum(ei, 1e-12) * (1.0 - self._fail_prob(cands))
        score = ei / self._cost_ratio(cands) ** self.cost_power
        return cands[int(np.argmax(score))]

    # ------------------------------------------------------------------ learning
    def observe(self, trial_id: str, epoch: int, value: float, epoch_s: float | None = None) -> None:
        """One intermediate result of a trial (any epoch, any order; repeats overwrite)."""
        t = self.trials.get(trial_id)
        if t is None or value is None or not math.isfinite(float(value)):
            return
        t["curve"][int(epoch)] = self.sign * float(value)
        self._stats = None
        if epoch_s is not None and math.isfinite(float(epoch_s)) and float(epoch_s) > 0:
            t["secs"].append(float(epoch_s))

    def complete(self, trial_id: str, *, failed: bool = False) -> None:
        """The trial ended (``failed``: it crashed or diverged)."""
        t = self.trials.get(trial_id)
        if t is not None:
            t["state"] = "failed" if failed else "done"
            self._stats = None

    def forget(self, trial_id: str) -> None:
        """Drop a trial that never ran (its configuration may be proposed again)."""
        t = self.trials.pop(trial_id, None)
        if t is not None:
            self.seen.discard(t["cid"])
            self._stats = None

    def _n_finished(self) -> int:
        return sum(1 for t in self.trials.values() if t["state"] != "running" or t["curve"])

    def incumbent(self) -> float:
        """Best (sign-adjusted) value observed at any epoch; ``-inf`` before any."""
        vals = [v for t in self.trials.values() for v in t["curve"].values()]
        return max(vals) if vals else -math.inf

    def _encode(self, cfgs: list[Mapping[str, Any]], ids: list[str] | None = None) -> np.ndarray:
        rows = []
        for i, c in enumerate(cfgs):
            key = ids[i] if ids is not None else None
            v = self._enc.get(key) if key is not None else None
            if v is None:
                v = np.asarray(self.space.encode(c), dtype=float)
                v = np.where(np.isfinite(v), v, -1.0)
                if key is not None:
                    self._enc[key] = v
            rows.append(v)
        return np.stack(rows)

    def _fit(self) -> Any:
        n = sum(len(t["curve"]) for t in self.trials.values())
        if self._model is not None and n < self._fitted_on + max(1, self.refit_every * self._fitted_on):
            return self._model
        from sklearn.ensemble import ExtraTreesRegressor

        rows, ids, ys, epochs = [], [], [], []
        for t in self.trials.values():
            for e, v in t["curve"].items():
                rows.append(t["config"])
                ids.append(t["cid"])
                epochs.append(e / self.max_epochs)
                ys.append(v)
        if not rows:
            return None
        x = np.column_stack([self._encode(rows, ids), epochs])
        model = ExtraTreesRegressor(n_estimators=24, min_samples_leaf=2, max_features=0.6,
                                    random_state=int(self.rng.integers(2**31)), n_jobs=1)
        model.fit(x, np.asarray(ys))
        self._model, self._fitted_on = model, n
        return model

    def predict(self, cfgs: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, spread) of the sign-adjusted metric at ``max_epochs`` for each config."""
        model = self._fit()
        if model is None:
            return np.zeros(len(cfgs)), np.ones(len(cfgs))
        x = np.column_stack([self._encode(cfgs), np.ones(len(cfgs))])
        per_tree = np.stack([est.predict(x) for est in model.estimators_])
        return per_tree.mean(axis=0), per_tree.std(axis=0) + 1e-3

    # ------------------------------------------------------------------ failures and cost
    def _value_stats(self) -> dict[tuple[str, Any], list[int]]:
        if self._stats is not None:
            return self._stats
        stats: dict[tuple[str, Any], list[int]] = {}
        for t in self.trials.values():
            if t["state"] == "running" and not t["curve"]:
                continue
            failed = t["state"] == "failed"
            for k, v in t["config"].items():
                s = stats.setdefault((k, _hashable(v)), [0, 0])
                s[0 if failed else 1] += 1
        self._stats = stats
        return stats

    def _excluded(self, cfg: Mapping[str, Any]) -> bool:
        """True when a value of ``cfg`` failed ``fail_limit`` times and never ran."""
        stats = self._value_stats()
        return any(stats.get((k, _hashable(v)), (0, 1))[0] >= self.fail_limit
                   and stats[(k, _hashable(v))][1] == 0 for k, v in cfg.items())

    def _fail_prob(self, cfgs: list[Mapping[str, Any]]) -> np.ndarray:
        stats = self._value_stats()
        out = np.zeros(len(cfgs))
        for i, c in enumerate(cfgs):
            rates = [(s[0]) / (s[0] + s[1] + 2.0)
                     for s in (stats.get((k, _hashable(v))) for k, v in c.items()) if s]
            out[i] = max(rates, default=0.0)
        return out

    def _cost_ratio(self, cfgs: list[Mapping[str, Any]]) -> np.ndarray:
        by_pair: dict[tuple, list[float]] = {}
        by_model: dict[Any, list[float]] = {}
        every: list[float] = []
        for t in self.trials.values():
            if not t["secs"]:
                continue
            key = (_hashable(t["config"].get("model")), t["config"].get("batch-size"))
            by_pair.setdefault(key, []).extend(t["secs"])
            by_model.setdefault(key[0], []).extend(t["secs"])
            every.extend(t["secs"])
        if not every:
            return np.ones(len(cfgs))
        ref = float(np.median(every))
        out = np.empty(len(cfgs))
        for i, c in enumerate(cfgs):
            key = (_hashable(c.get("model")), c.get("batch-size"))
            secs = by_pair.get(key) or by_model.get(key[0]) or every
            out[i] = max(float(np.mean(secs)) / ref, 0.05)
        return out

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        """Plain-data state (the model is refitted from it)."""
        return {"rng": self.rng.bit_generator.state, "trials": _copy_trials(self.trials),
                "seen": sorted(self.seen), "next_portfolio": self.next_portfolio,
                "counts": dict(self.counts), "portfolio": [dict(c) for c in self.portfolio]}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`get_state` returned."""
        self.rng.bit_generator.state = state["rng"]
        self.trials = _copy_trials(state["trials"])
        self.seen = set(state["seen"])
        self.next_portfolio = int(state["next_portfolio"])
        self.counts = dict(state["counts"])
        self.portfolio = [dict(c) for c in state["portfolio"]]
        self._model, self._fitted_on, self._stats = None, -1, None


def _copy_trials(trials: Mapping[str, dict]) -> dict[str, dict]:
    return {k: {"config": dict(t["config"]), "cid": t["cid"], "curve": dict(t["curve"]),
                "secs": list(t["secs"]), "state": t["state"]} for k, t in trials.items()}


def _hashable(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _norm_pdf(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _norm_cdf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(z)
