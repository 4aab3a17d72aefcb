"""The checkpoint manager archtune gives every trial (orchestrator.checkpoints.tolerant)."""
from __future__ import annotations

from pathlib import Path

from ray.train import CheckpointConfig
from ray.train._internal.checkpoint_manager import _CheckpointManager
from ray.train._internal.session import _TrainingResult
from ray.tune import Checkpoint

from orchestrator.checkpoints import TolerantCheckpointManager, tolerant


def _result(folder: Path, it: int) -> _TrainingResult:
    folder.mkdir(exist_ok=True)
    (folder / "state.json").write_text("{}")
    return _TrainingResult(checkpoint=Checkpoint(str(folder)),
                           metrics={"training_iteration": it})


def test_a_folder_registered_twice_is_one_entry_and_never_deleted_while_newest(tmp_path):
    """A paused PBT trial's save returns the checkpoint it last reported: Ray's manager lists
    the folder twice and evicting the older entry deletes the folder the newest names."""
    m = TolerantCheckpointManager(checkpoint_config=CheckpointConfig(num_to_keep=2))
    m.register_checkpoint(_result(tmp_path / "checkpoint_000000", 1))
    m.register_checkpoint(_result(tmp_path / "checkpoint_000001", 2))
    m.register_checkpoint(_result(tmp_path / "checkpoint_000001", 2))  # the pause's save
    m.register_checkpoint(_result(tmp_path / "checkpoint_000002", 3))
    assert (tmp_path / "checkpoint_000001").exists()
    assert not (tmp_path / "checkpoint_000000").exists()
    assert [Path(r.checkpoint.path).name for r in m.best_checkpoint_results] == [
        "checkpoint_000001", "checkpoint_000002"]


def test_evicting_a_checkpoint_already_gone_is_not_an_error(tmp_path):
    m = TolerantCheckpointManager(checkpoint_config=CheckpointConfig(num_to_keep=1))
    first = _result(tmp_path / "checkpoint_000000", 1)
    m.register_checkpoint(first)
    (tmp_path / "checkpoint_000000" / "state.json").unlink()
    (tmp_path / "checkpoint_000000").rmdir()  # deleted by a driver that crashed later
    m.register_checkpoint(_result(tmp_path / "checkpoint_000001", 2))
    assert [Path(r.checkpoint.path).name for r in m.best_checkpoint_results] == [
        "checkpoint_000001"]
    assert m.latest_checkpoint_result.metrics["training_iteration"] == 2


def test_tolerant_converts_a_trials_manager_in_place():
    class Meta:
        checkpoint_manager = _CheckpointManager(CheckpointConfig(num_to_keep=2))

    class Trial:
        run_metadata = Meta()

    t = Trial()
    m = tolerant(t)
    assert isinstance(m, TolerantCheckpointManager) and tolerant(t) is m
    assert t.run_metadata.checkpoint_manager is m


def _trial(root: Path, tid: str):
    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial
    from ray.tune.registry import register_trainable

    register_trainable("archtune_test_noop", lambda config: None)
    storage = StorageContext(storage_path=str(root), experiment_dir_name="exp",
                             trial_dir_name=f"trial_{tid}")
    return Trial("archtune_test_noop", config={}, trial_id=tid, storage=storage,
                 checkpoint_config=CheckpointConfig(num_to_keep=2))


def _resumed_fallback():
    from orchestrator.checkpoints import CheckpointFallback

    cb = CheckpointFallback()
    cb.set_state(cb.get_state())  # as Tune does when it restores the experiment
    return cb


def test_fallback_replaces_a_deleted_latest_checkpoint_with_the_newest_on_disk(tmp_path):
    """The snapshot names checkpoints 0 and 1; a newer driver wrote 2 and 3 and deleted 0 and
    1 before it died. The resumed trial restores from 3, at the iteration 3 was written."""
    t = _trial(tmp_path, "a")
    folder = Path(t.storage.trial_fs_path)
    folder.mkdir(parents=True)
    m = t.run_metadata.checkpoint_manager
    for i in range(4):
        r = _result(folder / f"checkpoint_{i:06d}", i + 1)
        if i < 2:
            m.register_checkpoint(r)
    t.storage.current_checkpoint_index = 1
    for i in range(2):
        for f in (folder / f"checkpoint_{i:06d}").iterdir():
            f.unlink()
        (folder / f"checkpoint_{i:06d}").rmdir()

    _resumed_fallback().on_trial_start(0, [], t)
    m = t.run_metadata.checkpoint_manager
    latest = m.latest_checkpoint_result
    assert Path(latest.checkpoint.path).name == "checkpoint_000003"
    assert latest.metrics["training_iteration"] == 4
    assert t.storage.current_checkpoint_index == 3  # the next checkpoint gets a new folder
    assert all(Path(r.checkpoint.path).exists() for r in m.best_checkpoint_results)
    assert isinstance(m, TolerantCheckpointManager)


def test_fallback_gives_a_trial_unknown_checkpoints_its_newest_one(tmp_path):
    """A trial the snapshot holds without a checkpoint, whose folder has two."""
    t = _trial(tmp_path, "b")
    folder = Path(t.storage.trial_fs_path)
    folder.mkdir(parents=True)
    for i in range(2):
        _result(folder / f"checkpoint_{i:06d}", i + 1)
    _resumed_fallback().on_trial_start(0, [], t)
    latest = t.run_metadata.checkpoint_manager.latest_checkpoint_result
    assert Path(latest.checkpoint.path).name == "checkpoint_000001"
    assert latest.metrics["training_iteration"] == 2


def test_fallback_leaves_trials_alone_when_not_resumed(tmp_path):
    from orchestrator.checkpoints import CheckpointFallback

    t = _trial(tmp_path, "c")
    folder = Path(t.storage.trial_fs_path)
    folder.mkdir(parents=True)
    _result(folder / "checkpoint_000000", 1)
    CheckpointFallback().on_trial_start(0, [], t)  # a fresh run: nothing to restore
    assert t.run_metadata.checkpoint_manager.latest_checkpoint_result is None
