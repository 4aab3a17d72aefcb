"""Fault handling: trial retries from checkpoints, and a SIGKILLed driver resumed with
``archtune resume`` (finished trials kept, in-flight trials continue from checkpoints)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from orchestrator import Experiment, resume, run
from trainers_for_tests import TOY_SPACE

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def test_failing_trial_is_retried_from_its_checkpoint(ray_session, tmp_path):
    exp = Experiment.from_dict(dict(
        name="retry", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 0}, num_samples=2, max_epochs=3, max_concurrent=2,
        data={"fail_once_at": 2}, max_failures=2, storage=str(tmp_path)))
    res = run(exp)
    df = res.dataframe
    assert len(df) == 2 and set(df["status"]) == {"completed"}
    assert (df["retries"] == 1).all() and (df["epochs"] == 3).all()
    for tid in df["trial_id"]:
        restores = [json.loads(x) for x in
                    (Path(res.path) / f"trial_{tid}" / "restores.jsonl").read_text().splitlines()]
        assert restores == [{"me": tid, "from": tid, "epoch": 1}]  # resumed, not restarted
    # the table written to disk shows the retries too
    assert list(Results_load(res.path)["retries"]) == [1, 1]


def test_a_truncated_checkpoint_is_skipped_for_the_newest_intact_one(ray_session, tmp_path):
    """The trial fails at epoch 3 after its newest checkpoint (epoch 2) was cut short on disk:
    the retry finds it damaged against its manifest and continues from epoch 1."""
    exp = Experiment.from_dict(dict(
        name="trunc", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 0}, num_samples=1, max_epochs=4, max_concurrent=1,
        data={"fail_once_at": 3, "truncate_on_fail": True}, max_failures=1,
        storage=str(tmp_path)))
    res = run(exp)
    df = res.dataframe
    assert list(df["status"]) == ["completed"] and list(df["epochs"]) == [4]
    tid = df["trial_id"][0]
    restores = [json.loads(x) for x in
                (Path(res.path) / f"trial_{tid}" / "restores.jsonl").read_text().splitlines()]
    assert restores == [{"me": tid, "from": tid, "epoch": 1}]


def test_raising_nan_and_out_of_memory_trials_do_not_stop_the_experiment(ray_session, tmp_path):
    """One trial per fault: the one that raises once continues from its checkpoint, the NaN
    one is stopped at once as diverged, the one whose allocation fails is errored with the
    allocator's message (not Ray's wrapper line); the healthy one completes."""
    from trainers_for_tests import FAULT_SPACE

    exp = Experiment.from_dict(dict(
        name="kinds", space=FAULT_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "grid"}, max_epochs=5, max_concurrent=2, max_failures=1,
        storage=str(tmp_path)))
    res = run(exp)
    df = res.dataframe.set_index("config/fault")
    assert df.loc["none", "status"] == "completed" and df.loc["none", "retries"] == 0
    assert df.loc["fail_once", "status"] == "completed" and df.loc["fail_once", "retries"] == 1
    assert df.loc["nan", "status"] == "diverged" and df.loc["nan", "epochs"] == 2
    assert df.loc["oom", "status"] == "errored"
    assert "MemoryError: Unable to allocate" in df.loc["oom", "error"]
    assert res.best_config["fault"] in ("none", "fail_once")
    assert (Path(res.path) / "best.json").exists()


def test_manifest_names_what_is_wrong_with_a_checkpoint(tmp_path):
    from orchestrator.checkpoints import MANIFEST, checkpoint_problem, write_manifest

    (tmp_path / "sub").mkdir()
    (tmp_path / "state.json").write_text('{"epoch": 3}')
    (tmp_path / "sub" / "w.bin").write_bytes(b"x" * 100)
    write_manifest(tmp_path)
    assert checkpoint_problem(tmp_path) is None
    (tmp_path / "sub" / "w.bin").write_bytes(b"x" * 50)
    assert "sub/w.bin has 50 bytes, 100 were written" == checkpoint_problem(tmp_path)
    (tmp_path / "sub" / "w.bin").write_bytes(b"y" * 100)
    assert "changed" in checkpoint_problem(tmp_path)
    (tmp_path / "sub" / "w.bin").unlink()
    assert "missing" in checkpoint_problem(tmp_path)
    (tmp_path / MANIFEST).unlink()
    assert "incomplete" in checkpoint_problem(tmp_path)  # the copy stopped before it


def Results_load(path):
    import pandas as pd

    return pd.read_csv(Path(path) / "results.csv")


def test_trial_exceeding_max_failures_is_errored_and_experiment_finishes(ray_session, tmp_path):
    exp = Experiment.from_dict(dict(
        name="err", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 0}, num_samples=2, max_epochs=2, max_concurrent=2,
        data={"fail_once_at": 1}, max_failures=0, storage=str(tmp_path)))
    res = run(exp)
    assert list(res.dataframe["status"]) == ["errored", "errored"]
    assert res.best_metric is None


def _ray_pids(marker: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            env = (d / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if marker in cmd or marker in env:
            pids.append(int(d.name))
    return pids


def _trial_states(exp_dir: Path) -> dict[str, tuple[str, float | None]]:
    from ray.tune import ExperimentAnalysis

    ea = ExperimentAnalysis(str(exp_dir))
    return {t.trial_id: (t.status, (t.last_result or {}).get("val_acc"),
                         t.checkpoint is not None) for t in ea.trials}


@pytest.mark.slow
def test_sigkilled_driver_resumes(ray_session, tmp_path):
    """Ray's own snapshot period (>= 10 s, ``TUNE_GLOBAL_CHECKPOINT_S`` unset): the driver is
    SIGKILLed a few seconds in, while trials started after the first snapshot are running.
    Every trial with a checkpoint on disk is in the snapshot, and resumes from it."""
    spec = dict(name="killme", space=TOY_SPACE, trainer="trainers_for_tests:curve",
                searcher={"type": "random", "seed": 5}, num_samples=5, max_epochs=6,
                max_concurrent=2, data={"sleep": 0.4}, storage=str(tmp_path / "runs"))
    exp_dir = tmp_path / "runs" / "killme"
    proc, ray_tmp = _launch(tmp_path, spec)

    def progressed() -> bool:
        finished = list(exp_dir.glob("trial_*/checkpoint_000005"))
        # a trial that reported >= 3 of its 6 epochs and is still running
        partial = [d for d in exp_dir.glob("trial_*") if (d / "checkpoint_000002").exists()
                   and not (d / "checkpoint_000005").exists()]
        return len(finished) >= 2 and bool(partial)

    try:
        _wait_for(proc, progressed)
        time.sleep(1.0)  # the driver handles the newest reports (not a snapshot period)
    finally:
        _kill_run(proc, ray_tmp)
    assert not (exp_dir / "results.csv").exists()  # it really was interrupted
    before = _trial_states(exp_dir)
    done_before = {t: v for t, (s, v, _) in before.items() if s == "TERMINATED"}
    # in flight with a checkpoint recorded in the saved experiment state
    in_flight = [t for t, (s, _, ck) in before.items() if s != "TERMINATED" and ck]
    assert done_before and in_flight, before
    on_disk = {d.name.removeprefix("trial_") for d in exp_dir.glob("trial_*")
               if list(d.glob("checkpoint_*"))}
    # no trial that checkpointed is missing from the snapshot (it would restart from scratch)
    assert on_disk <= set(before), (on_disk, before)

    res = resume(exp_dir)
    df = res.dataframe.set_index("trial_id")
    assert len(df) == 5 and set(df["status"]) == {"completed"}
    for tid, acc in done_before.items():  # finished trials kept, not retrained
        assert df.loc[tid, "val_acc"] == pytest.approx(acc)
        assert not (exp_dir / f"trial_{tid}" / "restores.jsonl").exists()
    for tid in in_flight:  # in-flight trials continued from their own checkpoint
        restores = [json.loads(x) for x in
                    (exp_dir / f"trial_{tid}" / "restores.jsonl").read_text().splitlines()]
        assert restores and restores[0]["from"] == tid and restores[0]["epoch"] >= 1
    assert (exp_dir / "results.csv").exists()


@pytest.mark.slow
def test_trial_started_after_the_last_snapshot_resumes_from_its_checkpoint(ray_session,
                                                                          tmp_path):
    """One trial at a time, 3 s epochs, Ray's own snapshot period (>= 10 s). The driver dies
    one second after the second trial's first checkpoint: the snapshot archtune forces at a
    trial's first checkpoint names that trial, so the resume continues it from epoch 1
    instead of proposing a new trial that starts from scratch."""
    spec = dict(name="late", space=TOY_SPACE, trainer="trainers_for_tests:curve",
                searcher={"type": "random", "seed": 2}, num_samples=2, max_epochs=2,
                max_concurrent=1, data={"sleep": 3.0}, storage=str(tmp_path / "runs"))
    exp_dir = tmp_path / "runs" / "late"
    proc, ray_tmp = _launch(tmp_path, spec)

    def second_trial_checkpointed() -> list[Path]:
        firsts = [d for d in exp_dir.glob("trial_*") if (d / "checkpoint_000000").exists()
                  and not (d / "checkpoint_000001").exists()]
        return firsts if len(list(exp_dir.glob("trial_*"))) == 2 else []

    try:
        _wait_for(proc, second_trial_checkpointed)
        late = second_trial_checkpointed()[0].name.removeprefix("trial_")
        time.sleep(1.0)
    finally:
        _kill_run(proc, ray_tmp)
    assert late in _trial_states(exp_dir)

    res = resume(exp_dir)
    df = res.dataframe
    assert len(df) == 2 and set(df["status"]) == {"completed"}, df
    restores = [json.loads(x) for x in
                (exp_dir / f"trial_{late}" / "restores.jsonl").read_text().splitlines()]
    assert restores == [{"me": late, "from": late, "epoch": 1}]


def _launch(tmp_path: Path, spec: dict, *, extra_env: dict | None = None):
    """``archtune run`` of ``spec`` in a subprocess with its own Ray temp dir."""
    spec_file = tmp_path / f"{spec['name']}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    ray_tmp = tempfile.mkdtemp(prefix="atk", dir="/tmp")  # short: Ray socket paths are limited
    env = dict(os.environ, PYTHONPATH=f"{TESTS}:{REPO}", RAY_TMPDIR=ray_tmp, **(extra_env or {}))
    env.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "run", str(spec_file)],
                            cwd=str(tmp_path), env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, ray_tmp


def _kill_run(proc, ray_tmp: str) -> None:
    """SIGKILL the driver and its whole process group (its local Ray), then what is left of
    that Ray (by its temp dir); nothing else."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    time.sleep(1)
    _cleanup_ray(ray_tmp)


def _cleanup_ray(ray_tmp: str) -> None:
    for pid in _ray_pids(ray_tmp):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(ray_tmp, ignore_errors=True)


def _wait_for(proc, cond, timeout: float = 150) -> None:
    deadline = time.time() + timeout
    while not cond():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        assert time.time() < deadline, "experiment did not progress in time"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_is_an_interruption_not_a_finish(ray_session, tmp_path, sig, code):
    spec = dict(name=f"sig{code}", space=TOY_SPACE, trainer="trainers_for_tests:curve",
                searcher={"type": "random", "seed": 3}, num_samples=4, max_epochs=6,
                max_concurrent=2, data={"sleep": 0.4}, storage=str(tmp_path / "runs"))
    exp_dir = tmp_path / "runs" / spec["name"]
    proc, ray_tmp = _launch(tmp_path, spec)
    try:
        _wait_for(proc, lambda: list(exp_dir.glob("trial_*/checkpoint_000005")) and [
            d for d in exp_dir.glob("trial_*") if (d / "checkpoint_000001").exists()
            and not (d / "checkpoint_000005").exists()])
        proc.send_signal(sig)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        _cleanup_ray(ray_tmp)
    assert proc.returncode == code, out[-3000:]
    assert "interrupted" in out and f"archtune resume {exp_dir}" in out, out[-3000:]
    import re

    m = re.search(r"interrupted: (\d+) of (\d+) trials finished", out)
    assert m, out[-3000:]
    df = Results_load(exp_dir)
    assert int(m.group(1)) == (df["status"] != "interrupted").sum() >= 1
    assert "interrupted" in set(df["status"]) and "pruned" not in set(df["status"])
    assert not (exp_dir / "best.json").exists()

    res = resume(exp_dir)  # the interrupted trials continue; now the experiment is complete
    assert len(res.dataframe) == 4 and set(res.dataframe["status"]) == {"completed"}
    assert (exp_dir / "best.json").exists()


@pytest.mark.slow
def test_fault_injection_short(tmp_path):
    """The short version of bench/faults.py: TPE + ASHA, one SIGKILL of the driver at a random
    moment, then ``archtune resume`` to the end."""
    import random

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import faults
    finally:
        sys.path.remove(str(REPO / "bench"))
    row = faults.run_scenario("asha", 1, random.Random(0), tmp_path)
    assert row["kills"] == 1 and row["kills_survived"] == 1, row
    assert row["finished_trials_lost"] == 0 and row["restarts_from_scratch"] == 0, row
    assert row["resume_failures"] == 0 and row["completed"], row
    assert row["errored_trials"] == 0, row
    assert row["rung_entries_lost"] == 0, row  # ASHA's rungs are kept across the resume


@pytest.mark.slow
@pytest.mark.parametrize("scenario,seed", [
    ("hyperband", 3),
    ("pbt", 1),
])
def test_fault_injection_resume_completes(tmp_path, scenario, seed):
    """HyperBand (which pauses trials in brackets) and PBT (whose exploits clone other trials'
    checkpoints): one SIGKILL of the driver, then ``archtune resume`` runs to the end within
    the timeout (no hang) with no errored trial."""
    import random

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import faults
    finally:
        sys.path.remove(str(REPO / "bench"))
    row = faults.run_scenario(scenario, 1, random.Random(seed), tmp_path, timeout=300,
                              num_samples=4)
    assert row["kills"] == 1 and row["hangs"] == 0 and row["resume_failures"] == 0, row
    assert row["completed"] and row["errored_trials"] == 0, row
    assert row["finished_trials_lost"] == 0, row


@pytest.mark.slow
def test_worker_node_removed_mid_trial(tmp_path):
    """bench/faults.py's worker-node scenario: a 2-node local cluster loses its worker node
    while trials run there; they continue from their checkpoints on the head node."""
    import random

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import faults
    finally:
        sys.path.remove(str(REPO / "bench"))
    row = faults.run_worker_kill(tmp_path, random.Random(0), timeout=280)
    assert row["completed"] and row["worker_removed"], row
    assert row["trials_hit"] >= 1 and row["errored_trials"] == 0, row
    assert row["completed_trials"] == 6 and row["restarts_from_scratch"] == 0, row


@pytest.mark.slow
def test_ray_left_by_a_sigkilled_driver_is_found_and_stopped(tmp_path, monkeypatch):
    """Only the driver is SIGKILLed: its local Ray outlives it. The record it left names the
    Ray session; the report gives the kill command for exactly those processes and
    ``stop_leftovers`` (run before archtune starts its next local Ray) stops them."""
    from orchestrator import local_ray

    state = tmp_path / "state"
    monkeypatch.setenv("ARCHTUNE_STATE_DIR", str(state))
    spec = dict(name="orphan", space=TOY_SPACE, trainer="trainers_for_tests:curve",
                searcher={"type": "random", "seed": 0}, num_samples=4, max_epochs=50,
                max_concurrent=2, data={"sleep": 0.3}, storage=str(tmp_path / "runs"))
    proc, ray_tmp = _launch(tmp_path, spec, extra_env={"ARCHTUNE_STATE_DIR": str(state)})
    try:
        exp_dir = tmp_path / "runs" / "orphan"
        _wait_for(proc, lambda: list(exp_dir.glob("trial_*/checkpoint_000001")))
        records = list(state.glob("*.json"))
        assert len(records) == 1
        session = json.loads(records[0].read_text())["session_dir"]
        assert session.startswith(ray_tmp)
        assert local_ray.leftover_report() == []  # its driver is alive: not a leftover
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, not its process group
        proc.wait(timeout=30)
        time.sleep(2)
        left = local_ray.session_pids(session)
        if not left:  # Ray may end its processes with the driver; then nothing is left over
            pytest.skip("the killed driver's Ray ended with it: no leftover to find")
        report = local_ray.leftover_report()
        assert len(report) == 1 and session in report[0] and "kill " in report[0]
        assert local_ray.stop_leftovers() >= 1
        assert local_ray.session_pids(session) == [] and not list(state.glob("*.json"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _cleanup_ray(ray_tmp)
