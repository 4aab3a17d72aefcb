"""TensorBoard callback: per-trial scalars + ONE experiment-level HParams config covering every
parameter of the space (conditional ones included), read back with tensorboard's own reader."""
from __future__ import annotations

from pathlib import Path

import pytest
from types import SimpleNamespace

from tensorboard.backend.event_processing import event_accumulator, plugin_event_multiplexer
from tensorboard.plugins.hparams import metadata as hp_metadata

from orchestrator.tensorboard import TensorBoardCallback
from spaces.formats import load_space
from trainers_for_tests import TOY_SPACE


def _trial(tid, config):
    return SimpleNamespace(trial_id=tid, config=config, status="RUNNING")


def _simulate(logdir: Path):
    space = load_space(TOY_SPACE)
    cb = TensorBoardCallback(logdir, space, "val_acc", "max")
    cb.setup()
    trials = [
        _trial("t0", {"x": 0.1, "opt": "a", "depth": 1, "lr": 0.01}),
        _trial("t1", {"x": 0.5, "opt": "b", "depth": 3, "lr": 0.001, "momentum": 0.9}),
        _trial("t2", {"x": 0.9, "opt": "a", "depth": 2, "lr": 0.1}),
    ]
    for t in trials:
        cb.on_trial_start(0, trials, t)
    for epoch in (1, 2, 3):
        for i, t in enumerate(trials):
            acc = 0.2 * epoch + 0.05 * i
            cb.on_trial_result(0, trials, t, {"epoch": epoch, "training_iteration": epoch,
                                              "val_acc": acc, "val_loss": 1 - acc,
                                              "train_loss": 1.1 - acc, "lr": 0.01,
                                              "time_total_s": 1.0 * epoch, "diverged": 0})
    cb.on_trial_complete(0, trials, trials[0])
    cb.on_trial_complete(0, trials, trials[1])
    cb.on_trial_error(0, trials, trials[2])
    cb.on_experiment_end(trials)
    return space, trials


def test_one_experiment_hparams_config_with_every_param(tmp_path):
    space, trials = _simulate(tmp_path)
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(tmp_path))
    mux.Reload()
    content = mux.PluginRunToTagToContent(hp_metadata.PLUGIN_NAME)
    experiments = [(run, tag) for run, tags in content.items() for tag in tags
                   if tag == hp_metadata.EXPERIMENT_TAG]
    assert len(experiments) == 1, experiments  # exactly one experiment-level config
    run, tag = experiments[0]
    exp = hp_metadata.parse_experiment_plugin_data(content[run][tag])
    names = {h.name for h in exp.hparam_infos}
    assert names == set(space.params)  # conditional 'momentum' included
    metrics = {m.name.tag for m in exp.metric_infos}
    assert {"val_acc", "val_loss", "train_loss"} <= metrics
    # each trial: a session start with its own hparams and a session end
    sessions = {}
    for run_name, tags in content.items():
        if hp_metadata.SESSION_START_INFO_TAG in tags:
            info = hp_metadata.parse_session_start_info_plugin_data(
                tags[hp_metadata.SESSION_START_INFO_TAG])
            sessions[run_name] = info
            assert hp_metadata.SESSION_END_INFO_TAG in tags
    assert set(sessions) == {"t0", "t1", "t2"}
    assert "momentum" in sessions["t1"].hparams and "momentum" not in sessions["t0"].hparams
    assert sessions["t2"].hparams["opt"].string_value == "a"
    assert sessions["t1"].hparams["x"].number_value == 0.5


def test_per_trial_scalars_and_best_so_far(tmp_path):
    _simulate(tmp_path)
    for tid in ("t0", "t1", "t2"):
        ea = event_accumulator.EventAccumulator(str(tmp_path / tid))
        ea.Reload()
        tags = set(ea.Tags()["scalars"])
        assert {"val_acc", "val_loss", "train_loss", "lr", "epoch"} <= tags
        assert "training_iteration" not in tags and "diverged" in tags
        assert [e.step for e in ea.Scalars("val_acc")] == [1, 2, 3]
    ea = event_accumulator.EventAccumulator(str(tmp_path))
    ea.Reload()
    best = [e.value for e in ea.Scalars("best/val_acc")]
    assert best == sorted(best) and abs(best[-1] - 0.7) < 1e-6


def test_callback_survives_pickling(tmp_path):
    import pickle

    cb = TensorBoardCallback(tmp_path, load_space(TOY_SPACE), "val_acc", "max")
    cb.setup()
    clone = pickle.loads(pickle.dumps(cb))
    clone.setup()
    trial = _trial("c0", {"x": 0.2, "opt": "a", "depth": 2, "lr": 0.01})
    clone.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        clone.on_trial_result(0, [trial], trial, {"epoch": epoch, "training_iteration": epoch,
                                                  "val_acc": 0.3 * epoch, "val_loss": 0.5})
    clone.on_trial_complete(0, [trial], trial)
    clone.on_experiment_end([trial])
    cb.on_experiment_end([])
    # the unpickled callback logs: its trial's scalars read back with TensorBoard's reader
    ea = event_accumulator.EventAccumulator(str(tmp_path / "c0"))
    ea.Reload()
    assert [(e.step, round(e.value, 6)) for e in ea.Scalars("val_acc")] == [(1, 0.3), (2, 0.6)]


def test_real_run_writes_tensorboard(ray_session, tmp_path):
    from orchestrator import Experiment, run

    res = run(Experiment.from_dict(dict(
        name="tb", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 2}, num_samples=3, max_epochs=2,
        max_concurrent=2, storage=str(tmp_path))))
    tb = Path(res.path) / "tensorboard"
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(tb))
    mux.Reload()
    content = mux.PluginRunToTagToContent(hp_metadata.PLUGIN_NAME)
    starts = [r for r, tags in content.items() if hp_metadata.SESSION_START_INFO_TAG in tags]
    assert sorted(starts) == sorted(res.dataframe["trial_id"])
    for tid in res.dataframe["trial_id"]:
        ea = event_accumulator.EventAccumulator(str(tb / tid))
        ea.Reload()
        assert len(ea.Scalars("val_acc")) == 2


def test_no_flush_per_result_and_trial_writers_close_at_trial_end(tmp_path, monkeypatch):
    """Flushing every result costs a file sync per trial per epoch: flush only when a trial
    ends (its writer is closed then, and reopened if the trial runs again) and at the end."""
    from orchestrator import tensorboard as tb

    flushes, closes = [], []
    real_flush, real_close = tb._Writer.flush, tb._Writer.close
    monkeypatch.setattr(tb._Writer, "flush", lambda self: (flushes.append(self), real_flush(self)))
    monkeypatch.setattr(tb._Writer, "close", lambda self: (closes.append(self), real_close(self)))
    cb = TensorBoardCallback(tmp_path, load_space(TOY_SPACE), "val_acc", "max")
    cb.setup()
    trials = [_trial("t0", {"x": 0.1, "opt": "a", "depth": 1, "lr": 0.01}),
              _trial("t1", {"x": 0.5, "opt": "a", "depth": 2, "lr": 0.01})]
    for t in trials:
        cb.on_trial_start(0, trials, t)
    flushes.clear()

    def result(t, epoch):
        cb.on_trial_result(0, trials, t, {"epoch": epoch, "val_acc": 0.1 * epoch})

    for epoch in (1, 2, 3):
        for t in trials:
            result(t, epoch)
    assert flushes == [] and closes == []
    cb.on_trial_complete(0, trials, trials[0])
    assert "t0" not in cb._writers and "t1" in cb._writers and len(closes) == 1
    # t0's events are on disk now, while t1 still runs
    ea = event_accumulator.EventAccumulator(str(tmp_path / "t0"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("val_acc")] == [1, 2, 3]
    cb.on_trial_error(0, trials, trials[1])
    assert cb._writers == {}
    # t1 is restarted (e.g. an errored trial resumed): its writer reopens lazily
    cb.on_trial_start(0, trials, trials[1])
    result(trials[1], 4)
    cb.on_trial_complete(0, trials, trials[1])
    assert cb._writers == {}
    cb.on_experiment_end(trials)
    assert cb._exp is None
    ea = event_accumulator.EventAccumulator(str(tmp_path / "t1"))
    ea.Reload()
    assert [e.step for e in ea.Scalars("val_acc")] == [1, 2, 3, 4]
    ea = event_accumulator.EventAccumulator(str(tmp_path))
    ea.Reload()
    assert abs(ea.Scalars("best/val_acc")[-1].value - 0.4) < 1e-6


def _sessions(logdir: Path):
    """run -> (session start hparams, session end status) as TensorBoard reads them."""
    mux = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(str(logdir))
    mux.Reload()
    content = mux.PluginRunToTagToContent(hp_metadata.PLUGIN_NAME)
    out = {}
    for run, tags in content.items():
        if hp_metadata.SESSION_START_INFO_TAG not in tags:
            continue
        start = hp_metadata.parse_session_start_info_plugin_data(
            tags[hp_metadata.SESSION_START_INFO_TAG])
        end = tags.get(hp_metadata.SESSION_END_INFO_TAG)
        status = hp_metadata.parse_session_end_info_plugin_data(end).status if end else None
        out[run] = (start.hparams, status)
    return out, content


def test_errored_then_completed_trial_shows_success_and_pbt_shows_new_hparams(tmp_path):
    from tensorboard.plugins.hparams import api_pb2

    cb = TensorBoardCallback(tmp_path, load_space(TOY_SPACE), "val_acc", "max")
    cb.setup()
    t0 = _trial("t0", {"x": 0.1, "opt": "a", "depth": 1, "lr": 0.01})
    t1 = _trial("t1", {"x": 0.5, "opt": "a", "depth": 2, "lr": 0.01})
    for t in (t0, t1):
        cb.on_trial_start(0, [t0, t1], t)
        cb.on_trial_result(0, [t0, t1], t, {"epoch": 1, "val_acc": 0.3})
    cb.on_trial_error(0, [t0, t1], t0)
    assert _sessions(tmp_path)[0]["t0"][1] == api_pb2.STATUS_FAILURE
    cb.on_trial_start(0, [t0, t1], t0)  # resumed errored trial
    cb.on_trial_result(0, [t0, t1], t0, {"epoch": 2, "val_acc": 0.5})
    cb.on_trial_complete(0, [t0, t1], t0)
    t1.config = {**t1.config, "lr": 0.02, "x": 0.4}  # a PBT exploit + explore
    cb.on_trial_start(0, [t0, t1], t1)
    cb.on_trial_result(0, [t0, t1], t1, {"epoch": 2, "val_acc": 0.4})
    cb.on_trial_complete(0, [t0, t1], t1)
    cb.on_experiment_end([t0, t1])
    sessions, _ = _sessions(tmp_path)
    assert sessions["t0"][1] == api_pb2.STATUS_SUCCESS
    assert sessions["t1"][0]["lr"].number_value == 0.02
    assert sessions["t1"][0]["x"].number_value == 0.4
    for tid in ("t0", "t1"):  # every scalar kept through the rewrite
        ea = event_accumulator.EventAccumulator(str(tmp_path / tid))
        ea.Reload()
        assert [e.step for e in ea.Scalars("val_acc")] == [1, 2]


def test_state_survives_a_resume(tmp_path):
    import pickle

    space = load_space(TOY_SPACE)
    cb = TensorBoardCallback(tmp_path, space, "val_acc", "max")
    pickled_at_start = pickle.dumps(cb)  # what Tune keeps in tuner.pkl
    cb.setup()
    t0 = _trial("t0", {"x": 0.1, "opt": "a", "depth": 1, "lr": 0.01})
    cb.on_trial_start(0, [t0], t0)
    cb.on_trial_result(0, [t0], t0, {"epoch": 1, "val_acc": 0.8})
    cb.on_trial_complete(0, [t0], t0)
    state = pickle.loads(pickle.dumps(cb.get_state()))  # Tune's experiment snapshot
    cb.on_experiment_end([t0])

    restored = pickle.loads(pickled_at_start)
    restored.set_state(state)
    restored.setup()
    t1 = _trial("t1", {"x": 0.5, "opt": "a", "depth": 2, "lr": 0.01})
    restored.on_trial_start(0, [t0, t1], t1)
    restored.on_trial_result(0, [t0, t1], t1, {"epoch": 1, "val_acc": 0.5})
    restored.on_trial_complete(0, [t0, t1], t1)
    restored.on_experiment_end([t0, t1])
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    configs = [ev for f in tmp_path.glob("events.out.tfevents.*")
               for ev in LegacyEventFileLoader(str(f)).Load()
               if any(v.tag == hp_metadata.EXPERIMENT_TAG for v in ev.summary.value)]
    assert len(configs) == 1  # one HParams config, though the experiment writer reopened
    ea = event_accumulator.EventAccumulator(str(tmp_path))
    ea.Reload()
    best = ea.Scalars("best/val_acc")
    assert [e.value for e in best] == pytest.approx([0.8, 0.8])  # not restarted at 0.5
    assert [e.step for e in best] == [1, 2]
