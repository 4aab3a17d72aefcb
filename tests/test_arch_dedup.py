"""ArchDedup: a configuration whose architecture (the parameters the builder read) was trained
is answered from that trial, for any wrapped searcher."""
from __future__ import annotations

from orchestrator.adapter import DUPLICATE_KEY, REUSE_KEY
from orchestrator.arch_dedup import ArchDedup
from orchestrator.search import SpaceSearcher
from spaces.core import Categorical, SearchSpace

SPACE = SearchSpace([Categorical("op", ("identity", "conv")), Categorical("k", (1, 3, 5, 7))])


def fake_train(cfg, epochs=2):
    """What a builder reports: identity ignores k."""
    used = ["op"] if cfg["op"] == "identity" else ["k", "op"]
    return {"val_acc": 0.5 if cfg["op"] == "identity" else 0.1 * cfg["k"], "epoch": epochs,
            "arch_id": SPACE.config_id(cfg, used=used), "arch_params": ",".join(used)}


def test_same_architecture_is_not_trained_twice(tmp_path):
    s = ArchDedup(SpaceSearcher(SPACE, seed=0, metric="val_acc", mode="max"), SPACE, max_t=2)
    trained, dups = [], []
    for i in range(30):
        cfg = s.suggest(f"t{i}")
        if cfg is None:
            continue
        if DUPLICATE_KEY in cfg:
            dups.append(cfg)
            s.on_trial_complete(f"t{i}", {**cfg[REUSE_KEY], "duplicate": 1})
            continue
        trained.append(cfg)
        s.on_trial_complete(f"t{i}", fake_train(cfg))
    ids = [fake_train(c)["arch_id"] for c in trained]
    assert len(ids) == len(set(ids))                  # every trained architecture distinct
    assert len(trained) <= 5                          # identity (1) + conv x 4 kernels
    identity_dups = [d for d in dups if d["op"] == "identity"]
    assert identity_dups and all(d[REUSE_KEY]["val_acc"] == 0.5 for d in identity_dups)
    s.save(str(tmp_path / "s.pkl"))
    s2 = ArchDedup(SpaceSearcher(SPACE, seed=0, metric="val_acc", mode="max"), SPACE, max_t=2)
    s2.restore(str(tmp_path / "s.pkl"))
    assert s2.trained == s.trained and s2.n_duplicates == s.n_duplicates


def test_early_stopped_trials_are_not_reused():
    s = ArchDedup(SpaceSearcher(SPACE, seed=1), SPACE, max_t=4)
    cfg = s.suggest("a")
    s.on_trial_complete("a", fake_train(cfg, epochs=1))
    assert s.trained == {}


def test_pipeline_top_configs_keep_one_trial_per_architecture():
    import types

    import pandas as pd

    from orchestrator.pipeline import _top_configs
    from orchestrator.spec import Experiment

    space = {"name": "s", "parameters": {
        "op": {"type": "categorical", "choices": ["identity", "conv"]},
        "k": {"type": "ordinal", "sequence": [1, 3, 5, 7]}}}
    rows = [{"op": "identity", "k": 1}, {"op": "identity", "k": 5}, {"op": "conv", "k": 3},
            {"op": "conv", "k": 5}]
    df = pd.DataFrame([{"trial_id": f"t{i}", "status": "completed",
                        "val_acc": [0.9, 0.8, 0.7, 0.6][i],
                        "arch_id": fake_train({"op": r["op"], "k": r["k"]})["arch_id"],
                        **{f"config/{k}": v for k, v in r.items()}}
                       for i, r in enumerate(rows)])
    exp = Experiment(name="x", space=space, trainer="nas")
    top = _top_configs(types.SimpleNamespace(dataframe=df), exp)
    # identity ignores k: t0 and t1 are one architecture, only the better one is kept
    assert [t["trial_id"] for t in top] == ["t0", "t2", "t3"]
    no_ids = _top_configs(types.SimpleNamespace(dataframe=df.drop(columns=["arch_id"])), exp)
    assert len(no_ids) == 4                           # without arch_id: distinct configs
