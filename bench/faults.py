"""Fault injection: the driver SIGKILLed at random moments, each time followed by
``archtune resume``, for several scheduler set-ups; reports what survived.

    python bench/faults.py --kills 3 --seed 0            # every scenario, 3 kills each
    python bench/faults.py --scenarios asha --kills 1    # the short version (tests/test_faults.py)

Each scenario runs a synthetic learning-curve trainer (``tests/trainers_for_tests.py:curve``,
0.3 s per epoch, a JSON checkpoint per epoch, a line in ``restores.jsonl`` per restore; 8
trials of 20 epochs) as ``archtune run`` in a subprocess with its own Ray; at a random moment
(1-8 s after the first checkpoint of the current attempt) the whole process group is
SIGKILLed, then ``archtune resume`` continues it; after the last kill the resume runs to the
end. Ray's own experiment snapshot period is used (``TUNE_GLOBAL_CHECKPOINT_S`` unset).
Figures per scenario:

- kills survived: kills after which a resume went on with the experiment;
- finished trials lost: trials finished in the last snapshot before a kill whose final row is
  missing or not finished, or whose final metric differs (goal 0);
- restarts from scratch: trials that had a checkpoint on disk when a kill hit them unfinished
  but never restored from any checkpoint (goal 0);
- resume failures: ``archtune resume`` exiting with an error (goal 0);
- errored trials: trials the finished experiment lists as ``errored`` (the curve trainer never
  fails by itself, so each one is a restore that failed; goal 0);
- rung entries lost (ASHA): results recorded in the scheduler's rungs in the snapshot before a
  kill that the finished experiment's scheduler no longer holds (goal 0);
- completed: the experiment finished (``best.json`` written).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
sys.path[:0] = [str(REPO), str(TESTS)]

SCENARIOS = {
    "asha": {"searcher": {"type": "tpe", "seed": 0, "n_startup_trials": 2},
             "scheduler": {"type": "asha", "options": {"grace_period": 2}}},
    "hyperband": {"searcher": {"type": "random", "seed": 0},
                  "scheduler": {"type": "hyperband", "options": {"reduction_factor": 2}}},
    "pbt": {"searcher": {"type": "random", "seed": 0},
            "scheduler": {"type": "pbt", "options": {"perturbation_interval": 2}},
            "resources": {"cpu": 0.5}},
}


def _spec(name: str, storage: Path, scenario: str) -> dict:
    from trainers_for_tests import TOY_SPACE

    return {"name": name, "space": TOY_SPACE, "trainer": "trainers_for_tests:curve",
            "num_samples": 8, "max_epochs": 20, "max_concurrent": 2,
            "data": {"sleep": 0.3}, "storage": str(storage), **SCENARIOS[scenario]}


def _env(ray_tmp: str) -> dict:
    env = dict(os.environ, PYTHONPATH=f"{TESTS}:{REPO}", RAY_TMPDIR=ray_tmp)
    env.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
    return env


def _snapshot(exp_dir: Path) -> dict[str, tuple[str, float | None]]:
    """trial id -> (status, last val_acc) in Tune's saved experiment state."""
    import logging

    from ray.tune import ExperimentAnalysis

    # archtune disables Ray's per-trial result files, which ExperimentAnalysis warns about
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)

    try:
        ea = ExperimentAnalysis(str(exp_dir))
    except Exception:  # noqa: BLE001 - no snapshot yet
        return {}
    return {t.trial_id: (t.status, (t.last_result or {}).get("val_acc")) for t in ea.trials}


def scheduler_state(exp_dir: Path) -> dict | None:
    """The trial scheduler's attributes in the newest experiment snapshot (trials as ids)."""
    from ray import cloudpickle

    from orchestrator.scheduler_state import load_scheduler

    files = sorted(exp_dir.glob("callback-states-*.pkl"), key=lambda p: p.stat().st_mtime)
    if not files:
        return None
    states = cloudpickle.loads(files[-1].read_bytes())

    class _Ids(dict):
        def __missing__(self, key: str) -> str:
            return key

    for st in states.values():
        if isinstance(st, dict) and st.get("scheduler"):
            return load_scheduler(st["scheduler"], _Ids())
    return None


def rung_entries(exp_dir: Path) -> set[tuple[int, int, str, float]]:
    """(bracket, milestone, trial id, recorded value) of every ASHA rung entry in the newest
    snapshot; empty when the scheduler is no ASHA or nothing is recorded."""
    state = scheduler_state(exp_dir) or {}
    return {(b, int(m), tid, float(v)) for b, br in enumerate(state.get("_brackets", []))
            for m, rec in br._rungs for tid, v in rec.items()}


def _unfinished_with_checkpoint(exp_dir: Path, max_epochs: int) -> set[str]:
    out = set()
    for d in exp_dir.glob("trial_*"):
        epochs = []
        for c in d.glob("checkpoint_*"):
            try:
                epochs.append(json.loads((c / "state.json").read_text())["epoch"])
            except (OSError, ValueError, KeyError):
                continue
        if epochs and max(epochs) < max_epochs:
            out.add(d.name[len("trial_"):])
    return out


def _kill_leftovers(ray_tmp: str) -> None:
    """SIGKILL the processes of the Ray started under ``ray_tmp`` that outlived the killed
    process group (Ray's workers run in sessions of their own)."""
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if marker in (d / "environ").read_bytes().split(b"\0"):
                os.kill(int(d.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


def _attempt(cmd: list[str], env: dict, cwd: Path, exp_dir: Path, kill_after: float | None,
             log, timeout: float = 600.0) -> tuple[str, int | None]:
    """Run ``cmd``; SIGKILL its process group ``kill_after`` s after its first new checkpoint.
    Returns ("killed" | "finished" | "hung", exit code); "hung": still running after
    ``timeout`` s (then killed)."""
    t_start = time.time()
    start_ckpts = {str(p) for p in exp_dir.glob("trial_*/checkpoint_*")}
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    t_first = None
    while proc.poll() is None:
        if kill_after is not None:
            if t_first is None and {str(p) for p in exp_dir.glob(
                    "trial_*/checkpoint_*")} - start_ckpts:
                t_first = time.time()
            if t_first is not None and time.time() - t_first >= kill_after:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return "killed", None
        if time.time() - t_start > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "hung", None
        time.sleep(0.1)
    return "finished", proc.returncode


def run_scenario(scenario: str, kills: int, rng: random.Random, workdir: Path,
                 timeout: float = 600.0, **overrides: object) -> dict:
    """Run ``scenario`` with ``kills`` SIGKILLs; ``overrides`` replace keys of its experiment
    (e.g. ``num_samples``). Returns the figures listed in the module docstring."""
    from orchestrator.runner import Results, is_complete

    spec = {**_spec(scenario, workdir / "runs", scenario), **overrides}
    spec_file = workdir / f"{scenario}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    exp_dir = workdir / "runs" / scenario
    stats = {"scenario": scenario, "kills": 0, "kills_survived": 0, "finished_trials_lost": 0,
             "restarts_from_scratch": 0, "resume_failures": 0, "hangs": 0,
             "rung_entries_lost": 0, "completed": False}
    rungs_before: set = set()
    finished_before: dict[str, float | None] = {}
    had_checkpoint: set[str] = set()
    cmd = [sys.executable, "-m", "orchestrator.cli", "run", str(spec_file)]
    t0 = time.time()
    with open(workdir / f"{scenario}.log", "ab") as log:
        for attempt in range(kills + 1):
            ray_tmp = tempfile.mkdtemp(prefix="atf", dir="/tmp")
            kill_after = rng.uniform(1.0, 8.0) if attempt < kills else None
            try:
                outcome, code = _attempt(cmd, _env(ray_tmp), workdir, exp_dir, kill_after, log,
                                         timeout)
            finally:
                _kill_leftovers(ray_tmp)
                shutil.rmtree(ray_tmp, ignore_errors=True)
            if outcome == "hung":
                stats["hangs"] += 1
                stats["resume_failures"] += int(attempt > 0)
                break
            if outcome == "finished":
                if code != 0:
                    stats["resume_failures"] += int(attempt > 0)
                break
            stats["kills"] += 1
            rungs_before |= rung_entries(exp_dir)
            snap = _snapshot(exp_dir)
            for tid, (status, acc) in snap.items():
                if status == "TERMINATED":
                    finished_before[tid] = acc
            # stopped early by the scheduler before the snapshot: nothing to continue
            had_checkpoint |= {t for t in _unfinished_with_checkpoint(exp_dir, spec["max_epochs"])
                               if snap.get(t, ("",))[0] not in ("TERMINATED", "ERROR")}
            cmd = [sys.executable, "-m", "orchestrator.cli", "resume", str(exp_dir)]
            stats["kills_survived"] += 1  # provisional: a failed resume takes it back below
    stats["completed"] = is_complete(exp_dir)
    if stats["resume_failures"]:
        stats["kills_survived"] -= 1
    if stats["completed"]:
        df = Results.load(exp_dir).dataframe.set_index("trial_id")
        stats["errored_trials"] = int((df["status"] == "errored").sum())
        stats["rung_entries_lost"] = len(rungs_before - rung_entries(exp_dir))
        stats["rung_entries_before_kills"] = len(rungs_before)
        for tid, acc in finished_before.items():
            if tid not in df.index or df.loc[tid, "status"] in ("interrupted", "errored") or (
                    acc is not None and abs(float(df.loc[tid, "val_acc"]) - acc) > 1e-9):
                stats["finished_trials_lost"] += 1
        for tid in had_checkpoint:
            if not (exp_dir / f"trial_{tid}" / "restores.jsonl").is_file():
                stats["restarts_from_scratch"] += 1
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="an attempt still running after this many seconds counts as a hang")
    a = ap.parse_args(argv)
    rng = random.Random(a.seed)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="archtune_faults_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario in a.scenarios.split(","):
        row = run_scenario(scenario, a.kills, rng, workdir, a.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
