"""Experiment report: a table of trials, the best configuration, and PNG plots.

``make_report(DIR)`` reads ``results.csv``/``best.json`` (written by ``run``/``resume``) and the
per-trial TensorBoard scalars for time series, and writes into ``DIR/report/``:

- ``best_so_far.png``: best objective so far vs elapsed time (trial completion order);
- ``param_<name>.png``: objective vs each of the top parameters (most varied first);
- ``pareto.csv`` / ``pareto.png``: the non-dominated trials for two or more objectives (e.g.
  accuracy vs latency for architecture search).

``make_report(DIR, compare=[OTHER, ...])`` compares experiments: ``pareto.png`` then shows every
experiment's trials and front on one figure (labelled by experiment name) and
``pareto_compare.csv`` holds every front with an ``experiment`` column.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from spaces.errors import ArchtuneError

from . import storage
from .pareto import nondominated
from .runner import Results
from .selection import objective_value

__all__ = ["ExperimentFront", "default_objectives", "experiment_fronts", "experiment_label",
           "format_table", "make_report", "pareto_table", "parse_objectives", "plot_best_so_far",
           "plot_fronts", "plot_param", "plot_pareto"]

_SHOW_METRICS = ("val_acc", "val_loss", "train_loss", "epoch_time_s")


def format_table(res: Results, max_rows: int = 50) -> str:
    df = res.dataframe
    if df.empty:
        return "(no trials)"
    cols = ["trial_id", "status", "retries", "epochs"]
    metrics = [res.metric] + [m for m in _SHOW_METRICS if m != res.metric]
    cols += [m for m in metrics if m in df.columns]
    cfg_cols = [c for c in df.columns if c.startswith("config/")]
    cols += cfg_cols[:8]
    view = df[[c for c in cols if c in df.columns]].copy()
    view.columns = [c.removeprefix("config/") for c in view.columns]
    if res.metric in view.columns:
        view = view.sort_values(res.metric, ascending=res.mode == "min", na_position="last")
    with pd.option_context("display.width", 200, "display.max_columns", 30,
                           "display.float_format", "{:.4g}".format):
        return view.head(max_rows).to_string(index=False)


def _top_params(df: pd.DataFrame, metric: str, k: int = 6) -> list[str]:
    """Config columns ordered by how much the objective varies across their values."""
    scores = []
    y = pd.to_numeric(df.get(metric), errors="coerce")
    for c in df.columns:
        if not c.startswith("config/"):
            continue
        col = df[c]
        if col.nunique(dropna=True) < 2:
            continue
        try:
            if pd.api.types.is_numeric_dtype(col) and col.nunique() > 6:
                spread = abs(pd.Series(y).corr(pd.to_numeric(col, errors="coerce")))
            else:
                g = pd.Series(y).groupby(col.astype(str)).mean()
                spread = float(g.max() - g.min())
        except Exception:  # noqa: BLE001
            spread = 0.0
        scores.append((0.0 if spread is None or math.isnan(spread) else spread, c))
    return [c for _, c in sorted(scores, reverse=True)[:k]]


def parse_objectives(text: str) -> list[tuple[str, str]]:
    """``"val_acc:max,latency_ms:min"`` -> ``[("val_acc", "max"), ("latency_ms", "min")]``."""
    objectives = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, mode = part.partition(":")
        mode = mode or "max"
        if mode not in ("min", "max"):
            raise ArchtuneError(f"--pareto: objective {part!r}: mode must be 'min' or 'max'")
        objectives.append((name, mode))
    if len(objectives) < 2:
        raise ArchtuneError(f"--pareto: need at least two objectives, got {text!r} "
                            f"(e.g. val_acc:max,latency_ms:min)")
    return objectives


def default_objectives(df: pd.DataFrame, metric: str, mode: str) -> list[tuple[str, str]] | None:
    """The metric against latency (or params) when the trials reported one, else ``None``."""
    for cost in ("latency_ms", "params"):
        if cost in df.columns and metric in df.columns:
            return [(metric, mode), (cost, "min")]
    return None


def pareto_table(df: pd.DataFrame, objectives: Sequence[tuple[str, str]]) -> pd.DataFrame:
    """The non-dominated trials of ``df`` for ``objectives``, in table order (errored and
    diverged trials, and trials without a finite value of every objective, excluded)."""
    missing = [n for n, _ in objectives if n not in df.columns]
    if missing:
        raise ArchtuneError(f"pareto: no column {missing} in the results "
                            f"(columns: {sorted(c for c in df.columns if '/' not in c)})")
    ok = df[~df["status"].isin(["errored", "diverged"])] if "status" in df.columns else df
    signs = np.array([1.0 if mode == "max" else -1.0 for _, mode in objectives])
    points = ok[[n for n, _ in objectives]].apply(pd.to_numeric, errors="coerce").to_numpy(float)
    finite = np.isfinite(points).all(axis=1)
    keep = np.zeros(len(ok), dtype=bool)
    keep[finite] = nondominated(points[finite] * signs)
    cols = [c for c in ("trial_id", "status") if c in ok.columns] + [n for n, _ in objectives]
    return ok[keep][cols + [c for c in ok.columns if c.startswith("config/")]]


@dataclass(frozen=True)
class ExperimentFront:
    """One experiment of a comparison: its label, every trial, and its Pareto front."""

    label: str
    trials: pd.DataFrame
    front: pd.DataFrame


def experiment_label(res: Results, filesystem: Any = None) -> str:
    """The experiment's ``name`` from the ``experiment.yaml`` saved with its results, else the
    folder's name."""
    import yaml

    from .runner import SPEC_FILE

    spec = storage.resolve(res.path, filesystem) / SPEC_FILE
    try:
        name = (yaml.safe_load(spec.read_text()) or {}).get("name") if spec.is_file() else None
    except (OSError, yaml.YAMLError, AttributeError):
        name = None
    return str(name) if name else Path(str(res.path).rstrip("/")).name


def experiment_fronts(results: Sequence[Results], objectives: Sequence[tuple[str, str]],
                      filesystem: Any = None) -> list[ExperimentFront]:
    """The front of each experiment for the same ``objectives``, in the given order.

    Labels are the experiment names (:func:`experiment_label`); a repeated name gets its
    folder appended. Raises :class:`ArchtuneError` naming the experiment folder when one lacks
    an objective column.
    """
    fronts: list[ExperimentFront] = []
    for res in results:
        label = experiment_label(res, filesystem)
        if label in {f.label for f in fronts}:
            label = f"{label} ({res.path})"
        try:
            front = pareto_table(res.dataframe, objectives)
        except ArchtuneError as exc:
            raise ArchtuneError(f"{res.path}: {exc}") from None
        fronts.append(ExperimentFront(label, res.dataframe, front))
    return fronts


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return str(path)


def plot_pareto(df: pd.DataFrame, front: pd.DataFrame, objectives: Sequence[tuple[str, str]],
                out: Path) -> str:
    """``out/pareto.png``: every trial and the front of two objectives (x: the second)."""
    (yn, _), (xn, _) = objectives
    fig, ax = _pyplot().subplots(figsize=(5, 3.5))
    ax.scatter(pd.to_numeric(df[xn], errors="coerce"), pd.to_numeric(df[yn], errors="coerce"),
               s=12, alpha=0.4, label="trials")
    f = front.sort_values(xn)
    ax.step(f[xn], f[yn], where="post", color="C3", marker="o", label="Pareto front")
    ax.set_xlabel(xn)
    ax.set_ylabel(yn)
    ax.legend()
    return _save(fig, out / "pareto.png")


def plot_fronts(fronts: Sequence[ExperimentFront], objectives: Sequence[tuple[str, str]],
                out: Path) -> str:
    """``out/pareto.png``: the trials and the front of every experiment (one colour each) for
    two objectives (x: the second)."""
    (yn, _), (xn, _) = objectives
    fig, ax = _pyplot().subplots(figsize=(6.5, 4.5))
    for i, f in enumerate(fronts):
        color = f"C{i % 10}"
        ax.scatter(pd.to_numeric(f.trials[xn], errors="coerce"),
                   pd.to_numeric(f.trials[yn], errors="coerce"),
                   s=14, alpha=0.35, color=color, label=f"{f.label}: trials")
        front = f.front.sort_values(xn)
        ax.step(front[xn], front[yn], where="post", color=color, marker="o",
                label=f"{f.label}: front")
    ax.set_xlabel(xn)
    ax.set_ylabel(yn)
    ax.set_title("Pareto fronts")
    ax.legend(fontsize="small")
    return _save(fig, out / "pareto.png")


def plot_best_so_far(df: pd.DataFrame, metric: str, mode: str, out: Path) -> str | None:
    """``out/best_so_far.png``: the best ``metric`` so far against the time since the
    experiment started (trials in the order their last result arrived; the trials that compete
    for best, :func:`orchestrator.selection.select_best`); ``None`` when no trial has a
    value."""
    y = pd.to_numeric(df[metric], errors="coerce")
    y[~_competing(df, metric)] = np.nan
    if "timestamp" in df.columns:
        ts = pd.to_numeric(df["timestamp"], errors="coerce")
        tt = pd.to_numeric(df.get("time_total_s", 0), errors="coerce").fillna(0)
        t = ts - (ts - tt).min()
    else:
        t = pd.Series(range(len(df)), index=df.index, dtype=float)
    d = pd.DataFrame({"t": t, "y": y}).dropna().sort_values("t")
    if d.empty:
        return None
    best = d["y"].cummax() if mode == "max" else d["y"].cummin()
    fig, ax = _pyplot().subplots(figsize=(6, 4))
    ax.step(d["t"], best, where="post", label=f"best {metric}")
    ax.scatter(d["t"], d["y"], s=12, alpha=0.5, label="trials")
    ax.set_xlabel("elapsed (s)")
    ax.set_ylabel(metric)
    ax.set_title("best so far")
    ax.legend()
    return _save(fig, out / "best_so_far.png")


def plot_param(df: pd.DataFrame, column: str, metric: str, out: Path) -> str:
    """``out/param_<name>.png``: ``metric`` against one ``config/<name>`` column (numbers on
    a log axis when they span over two decades; choices, and ``inactive`` for a conditional
    parameter's empty cells, as categories)."""
    name = column[len("config/"):]
    y = pd.to_numeric(df[metric], errors="coerce")
    col = df[column]
    fig, ax = _pyplot().subplots(figsize=(5, 3.5))
    if pd.api.types.is_numeric_dtype(col) and col.nunique() > 1:
        ax.scatter(col, y, s=14)
        if (col.dropna() > 0).all() and col.max() / max(col.min(), 1e-300) > 100:
            ax.set_xscale("log")
    else:
        cats = ["inactive" if pd.isna(v) else str(v) for v in col]
        order = sorted(set(cats))
        ax.scatter([order.index(v) for v in cats], y, s=14)
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=30, ha="right")
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return _save(fig, out / f"param_{safe}.png")


def make_report(path: str | Path, *, plots: bool = True,
                pareto: Sequence[tuple[str, str]] | None = None,
                filesystem: Any = None,
                compare: Sequence[str | Path] = ()) -> dict[str, Any]:
    """Write the report; returns {"table": str, "best": {...}, "plots": [paths], "pareto": df,
    "fronts": [ExperimentFront]}.

    ``path`` is a local folder or a URI (``s3://...``, read and written through ``pyarrow.fs``
    as :func:`orchestrator.runner.run` writes it; ``filesystem`` for an endpoint such as
    MinIO). ``pareto`` names two or more ``(column, mode)`` objectives; by default the metric
    against ``latency_ms`` (or ``params``) when the trials reported one (the NAS trainer
    does). The front is written to ``report/pareto.csv`` (and ``report/pareto.png`` for two
    objectives). Returned paths are where the files were written (URIs on remote storage).

    ``compare`` names other experiment folders (same ``filesystem``) to compare with: each
    needs the objective columns (``pareto``, else the default objectives of ``path``); their
    fronts, ``path``'s first, are returned as ``"fronts"`` and written to
    ``report/pareto_compare.csv``, and ``report/pareto.png`` shows all of them. Without
    ``compare``, ``"fronts"`` holds ``path``'s front alone (empty when there is none).
    """
    import tempfile

    res = Results.load(path, filesystem)
    others = [Results.load(p, filesystem) for p in compare]
    fronts, objectives = _compared_fronts(res, others, pareto, filesystem)
    dest = storage.resolve(res.path, filesystem) / "report"
    with tempfile.TemporaryDirectory(prefix="archtune_report_") as tmp:
        out = Path(dest.path) if dest.is_local else Path(tmp)
        front, written = _write_report(res, out, plots and not others, pareto)
        if others:
            written = _write_comparison(fronts, objectives, out, plots) + written
            if plots:
                written += _write_metric_plots(res, out)
        if not dest.is_local:  # the files were made locally: copy them next to the results
            written = [_upload(Path(f), dest / Path(f).name) for f in written]
    return {"table": format_table(res), "best": {"metric": res.metric, "mode": res.mode,
                                                 "best_metric": res.best_metric,
                                                 "trial": res.best_trial,
                                                 "config": res.best_config},
            "plots": written, "results": res, "pareto": front, "fronts": fronts}


def _upload(local: Path, target: storage.Location) -> str:
    target.write_bytes(local.read_bytes())
    return str(target)


def _write_report(res: Results, out: Path, plots: bool,
                  pareto: Sequence[tuple[str, str]] | None) -> tuple[Any, list[str]]:
    df = res.dataframe
    written: list[str] = []
    objectives = list(pareto) if pareto else default_objectives(df, res.metric, res.mode)
    front = None
    if objectives and not df.empty:
        front = pareto_table(df, objectives)
        out.mkdir(parents=True, exist_ok=True)
        front.to_csv(out / "pareto.csv", index=False)
        written.append(str(out / "pareto.csv"))
        if plots and len(objectives) == 2:
            written.append(plot_pareto(df, front, objectives, out))
    return front, written + (_write_metric_plots(res, out) if plots else [])


def _write_metric_plots(res: Results, out: Path) -> list[str]:
    """``best_so_far.png`` and the ``param_<name>.png`` plots of ``res.metric``."""
    df = res.dataframe
    if df.empty or res.metric not in df.columns:
        return []
    out.mkdir(parents=True, exist_ok=True)
    ok = df[_competing(df, res.metric)]
    best_plot = plot_best_so_far(df, res.metric, res.mode, out)
    written = [best_plot] if best_plot else []
    return written + [plot_param(ok, c, res.metric, out) for c in _top_params(ok, res.metric)]


def _compared_fronts(res: Results, others: Sequence[Results],
                     pareto: Sequence[tuple[str, str]] | None, filesystem: Any
                     ) -> tuple[list[ExperimentFront], list[tuple[str, str]] | None]:
    """The fronts of ``res`` and ``others`` and the objectives they are taken on (nothing is
    written; a missing objective raises :class:`ArchtuneError` before any file is)."""
    objectives = list(pareto) if pareto else default_objectives(res.dataframe, res.metric,
                                                                res.mode)
    if not others:
        if objectives and not res.dataframe.empty:
            return experiment_fronts([res], objectives, filesystem), objectives
        return [], objectives
    if not objectives:
        raise ArchtuneError(f"{res.path}: no objectives to compare fronts on: pass --pareto "
                            f"(e.g. val_acc:max,latency_ms:min)")
    return experiment_fronts([res, *others], objectives, filesystem), objectives


def _write_comparison(fronts: Sequence[ExperimentFront], objectives: Sequence[tuple[str, str]],
                      out: Path, plots: bool) -> list[str]:
    """``pareto_compare.csv`` (every front, an ``experiment`` column first) and, for two
    objectives with ``plots``, the combined ``pareto.png``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    table = pd.concat([f.front.assign(experiment=f.label) for f in fronts], ignore_index=True)
    table = table[["experiment"] + [c for c in table.columns if c != "experiment"]]
    table.to_csv(out / "pareto_compare.csv", index=False)
    written = [str(out / "pareto_compare.csv")]
    if plots and len(objectives) == 2:
        written.append(plot_fronts(fronts, objectives, out))
    return written


def _competing(df: pd.DataFrame, metric: str) -> pd.Series:
    """Rows that compete for best under :func:`orchestrator.selection.select_best`'s rule."""
    return pd.Series([objective_value(r, metric) is not None
                      for r in df.to_dict("records")], index=df.index, dtype=bool)
