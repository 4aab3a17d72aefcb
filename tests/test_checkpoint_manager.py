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
