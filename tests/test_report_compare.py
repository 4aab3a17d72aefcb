"""`archtune report DIR --compare OTHER` draws several experiments' Pareto fronts on one figure."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from orchestrator.cli import main
from orchestrator.report import make_report
from orchestrator.runner import SPEC_FILE, Results
from orchestrator.spec import Experiment
from spaces.errors import ArchtuneError

OBJECTIVES = [("val_acc", "max"), ("latency_ms", "min")]

# (trial, status, val_acc, latency_ms, reward)
UNCONSTRAINED = [("u1", "completed", 0.95, 6.0), ("u2", "completed", 0.93, 4.0),
                 ("u3", "completed", 0.90, 5.0), ("u4", "errored", 0.99, 1.0)]
CONSTRAINED = [("c1", "completed", 0.94, 2.0), ("c2", "completed", 0.88, 1.5),
               ("c3", "completed", 0.80, 3.0), ("c4", "completed", 0.94, 2.5)]


def _experiment(storage, name: str, rows, metric: str = "val_acc", columns=OBJECTIVES):
    """An experiment folder as ``run`` leaves it: ``experiment.yaml``, ``results.csv`` and
    ``best.json`` written by the runner's own writers."""
    exp = Experiment(name=name, space="mnasnet", trainer="nas", metric=metric, mode="max",
                     storage=str(storage))
    folder = storage / name
    folder.mkdir(parents=True)
    (folder / SPEC_FILE).write_text(exp.to_yaml())
    df = pd.DataFrame([{"trial_id": t, "status": s, "epochs": 3, "val_acc": acc,
                        "latency_ms": lat, "reward": acc * (2.0 / lat) ** 0.07,
                        "config/blocks.1.op": "mbconv", "config/blocks.1.kernel": 3 + 2 * (i % 2)}
                       for i, (t, s, acc, lat) in enumerate(rows)])
    df = df[[c for c in df.columns if c not in {n for n, _ in OBJECTIVES} - {n for n, _ in columns}]]
    best = df[df["status"] == "completed"].sort_values(metric).iloc[-1]
    Results(best_config={"blocks.1.op": "mbconv"}, best_metric=float(best[metric]), dataframe=df,
            path=str(folder), metric=metric, mode="max", best_trial=best["trial_id"]).save()
    return folder


@pytest.fixture()
def two_runs(tmp_path):
    return (_experiment(tmp_path, "unconstrained", UNCONSTRAINED),
            _experiment(tmp_path, "latency_2ms", CONSTRAINED, metric="reward"))


def _pixels_near(image: np.ndarray, hex_color: str, tol: float = 0.08) -> int:
    rgb = np.array([int(hex_color[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return int((np.abs(image[..., :3] - rgb).max(axis=2) < tol).sum())


def test_compare_returns_each_front_labelled_by_experiment(two_runs):
    a, b = two_runs
    rep = make_report(a, pareto=OBJECTIVES, compare=[b])
    assert [f.label for f in rep["fronts"]] == ["unconstrained", "latency_2ms"]
    assert sorted(rep["fronts"][0].front["trial_id"]) == ["u1", "u2"]   # u4 errored, u3 dominated
    assert sorted(rep["fronts"][1].front["trial_id"]) == ["c1", "c2"]   # c3, c4 dominated by c1
    assert len(rep["fronts"][1].trials) == 4
    table = pd.read_csv(a / "report" / "pareto_compare.csv")
    assert list(table.columns[:2]) == ["experiment", "trial_id"]
    assert sorted(zip(table["experiment"], table["trial_id"])) == [
        ("latency_2ms", "c1"), ("latency_2ms", "c2"), ("unconstrained", "u1"),
        ("unconstrained", "u2")]
    assert sorted(rep["pareto"]["trial_id"]) == ["u1", "u2"]  # DIR's own front, as before
    assert str(a / "report" / "pareto.png") in rep["plots"]


def test_compare_plot_draws_every_experiment(two_runs):
    import matplotlib.image as mpimg

    a, b = two_runs
    make_report(a, pareto=OBJECTIVES)
    single = mpimg.imread(a / "report" / "pareto.png")
    make_report(a, pareto=OBJECTIVES, compare=[b])
    both = mpimg.imread(a / "report" / "pareto.png")
    # one colour per experiment: C0 (#1f77b4) the first, C1 (#ff7f0e) the second
    assert _pixels_near(both, "#1f77b4") > 50 and _pixels_near(both, "#ff7f0e") > 50
    assert _pixels_near(single, "#ff7f0e") == 0  # the single-experiment plot has no C1


def test_cli_prints_each_front(two_runs, capsys):
    a, b = two_runs
    assert main(["report", str(a), "--compare", str(b), "--no-plots",
                 "--pareto", "val_acc:max,latency_ms:min"]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of unconstrained (2 trials):" in out
    assert "Pareto front of latency_2ms (2 trials):" in out
    assert " c1 " in f" {out} " and " u2 " in f" {out} "
    assert not (a / "report" / "pareto.png").exists()


def test_default_objectives_come_from_the_first_experiment(two_runs):
    a, b = two_runs
    rep = make_report(a, plots=False, compare=[b])
    assert [len(f.front) for f in rep["fronts"]] == [2, 2]


def test_single_experiment_report_is_unchanged(two_runs):
    a, _ = two_runs
    rep = make_report(a, pareto=OBJECTIVES)
    assert [f.label for f in rep["fronts"]] == ["unconstrained"]
    assert not (a / "report" / "pareto_compare.csv").exists()
    assert (a / "report" / "pareto.csv").is_file()


def test_missing_objective_names_the_experiment_and_writes_nothing(tmp_path):
    a = _experiment(tmp_path, "unconstrained", UNCONSTRAINED)
    b = _experiment(tmp_path, "no_latency", CONSTRAINED, columns=[("val_acc", "max")])
    with pytest.raises(ArchtuneError, match=r"no_latency.*no column \['latency_ms'\]"):
        make_report(a, pareto=OBJECTIVES, compare=[b])
    assert not (a / "report").exists()
    assert main(["report", str(a), "--compare", str(b)]) == 1  # an error, not invalid input


def test_same_names_are_told_apart(tmp_path):
    a = _experiment(tmp_path / "x", "search", UNCONSTRAINED)
    b = _experiment(tmp_path / "y", "search", CONSTRAINED)
    rep = make_report(a, plots=False, pareto=OBJECTIVES, compare=[b])
    labels = [f.label for f in rep["fronts"]]
    assert labels[0] == "search" and labels[1].startswith("search (") and str(b) in labels[1]
