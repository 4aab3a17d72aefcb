"""Fault injection: the driver SIGKILLed at random moments, each time followed by
``archtune resume``, for several scheduler set-ups; reports what survived.

    python bench/faults.py --kills 20 --seed 0           # every scenario, 20 kills each
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

Driver-kill scenarios: ``asha`` (TPE + ASHA), ``hyperband``, ``pbt``, ``asha_truncate`` (as
``asha``, and after each kill the newest checkpoint file of one unfinished trial with an older
checkpoint is cut short on disk: the resume must skip it for the older one) and ``pipeline``
(the staged NAS pipeline of tests/test_pipeline.py with a slowed NAS-like trainer, resumed by
running ``archtune pipeline`` again; its kill comes 3-15 s after the attempt starts, since
that trainer writes no checkpoints; figures summed over the stages' experiments).
Other faults, no driver kill: ``trial_faults`` (one trial that raises once, one whose metric
goes NaN, one whose allocation fails, one healthy: each must end as expected and the
experiment complete) and ``worker_kill`` (a 2-node local cluster whose worker node is removed
while trials run on it: they must continue from their checkpoints on the head node).
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
SCENARIOS["asha_truncate"] = SCENARIOS["asha"]
OTHER = ("pipeline", "trial_faults", "worker_kill")


def _spec(name: str, storage: Path, scenario: str) -> dict:
    from trainers_for_tests import TOY_SPACE

    return {"name": name, "space": TOY_SPACE, "trainer": "trainers_for_tests:curve",
            "num_samples": 8, "max_epochs": 20, "max_concurrent": 2,
            "data": {"sleep": 0.3}, "storage": str(storage), **SCENARIOS[scenario]}


def _pipeline_spec(name: str, storage: Path) -> dict:
    from trainers_for_tests import NAS_TOY_SPACE

    return {"name": name, "space": NAS_TOY_SPACE, "trainer": "tests.trainers_for_tests:nas_like",
            "data": {"image_size": 16, "sleep": 0.3}, "max_epochs": 4,
            "storage": str(storage), "max_concurrent": 2,
            "proxy": {"num_models": 8, "min_valid": 5, "target_tau": 0.65,
                      "candidates": [{"data_fraction": 0.25, "width_scale": 0.5, "epochs": 3},
                                     {"data_fraction": 0.6, "epochs": 3}]},
            "search": {"num_samples": 8, "searcher": {"type": "random", "seed": 1}},
            "final": {"top_n": 2},
            "augment": {"space": {"name": "ra", "parameters": {
                "num_ops": {"type": "ordinal", "sequence": [1, 2]},
                "magnitude": {"type": "ordinal", "sequence": [3, 9]}}}}}


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

    # newest by the session time in the name, as Tune picks it: a resume copies the older
    # sessions' files again, so their modification times say nothing
    files = sorted(exp_dir.glob("callback-states-*.pkl"))
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


def _attempt(cmd: list[str], env: dict, cwd: Path, root: Path, kill_after: float | None,
             log, timeout: float = 600.0, trigger: str | None = "**/trial_*/checkpoint_*"
             ) -> tuple[str, int | None]:
    """Run ``cmd``; SIGKILL its process group ``kill_after`` s after the first new path under
    ``root`` matching ``trigger`` (``None``: after the start). Returns ("killed" | "finished"
    | "hung", exit code); "hung": still running after ``timeout`` s (then killed)."""
    t_start = time.time()
    before = {str(p) for p in root.glob(trigger)} if trigger else set()
    proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)
    t_first = None if trigger else t_start
    while proc.poll() is None:
        if kill_after is not None:
            if t_first is None and {str(p) for p in root.glob(trigger)} - before:
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


def _experiments(root: Path) -> list[Path]:
    """The experiment folders under ``root`` (itself, or a pipeline's stage experiments)."""
    if (root / "experiment.yaml").is_file():
        return [root]
    return sorted(p.parent for p in root.glob("*/experiment.yaml"))


def _truncate_one(exp_dir: Path, candidates: set[str], rng: random.Random) -> str | None:
    """Cut the newest checkpoint file of one trial in ``candidates`` that has an older
    checkpoint to fall back on; returns the trial id (``None`` when no trial qualifies)."""
    def states(t: str) -> list[Path]:  # complete checkpoint files, oldest first
        return sorted(p for p in (exp_dir / f"trial_{t}").glob("checkpoint_*/state.json")
                      if p.stat().st_size > 5)

    ok = sorted(t for t in candidates if len(states(t)) >= 2)
    if not ok:
        return None
    tid = rng.choice(ok)
    state = states(tid)[-1]
    state.write_bytes(state.read_bytes()[:5])
    return tid


class _Ledger:
    """What the experiments under ``root`` held at each kill, and the figures it owes."""

    def __init__(self, root: Path, max_epochs: int) -> None:
        self.root, self.max_epochs = root, max_epochs
        self.rungs: set = set()
        # keys: (experiment folder, trial id)
        self.finished: dict[tuple[Path, str], float | None] = {}
        self.had_checkpoint: set[tuple[Path, str]] = set()

    def after_kill(self, truncate: bool, rng: random.Random) -> int:
        """Record the state after a kill; with ``truncate`` damage one checkpoint. Returns
        the number of checkpoints damaged (0 or 1)."""
        damaged = 0
        for d in _experiments(self.root):
            self.rungs |= {(d, *e) for e in rung_entries(d)}
            snap = _snapshot(d)
            for tid, (status, acc) in snap.items():
                if status == "TERMINATED":
                    self.finished[(d, tid)] = acc
            # stopped early by the scheduler before the snapshot: nothing to continue
            open_ = {t for t in _unfinished_with_checkpoint(d, self.max_epochs)
                     if snap.get(t, ("",))[0] not in ("TERMINATED", "ERROR")}
            self.had_checkpoint |= {(d, t) for t in open_}
            if truncate and not damaged:
                damaged = int(_truncate_one(d, open_, rng) is not None)
        return damaged

    def settle(self, stats: dict) -> None:
        """Fill the figures of finished experiments into ``stats``."""
        from orchestrator.runner import Results

        tables = {d: Results.load(d).dataframe.set_index("trial_id")
                  for d in _experiments(self.root) if (d / "results.csv").is_file()}
        stats["errored_trials"] = sum(int((df["status"] == "errored").sum())
                                      for df in tables.values())
        now = {(d, *e) for d in _experiments(self.root) for e in rung_entries(d)}
        stats["rung_entries_lost"] = len(self.rungs - now)
        stats["rung_entries_before_kills"] = len(self.rungs)
        for (exp, tid), acc in self.finished.items():
            df = tables.get(exp)
            if df is None or tid not in df.index or df.loc[tid, "status"] in (
                    "interrupted", "errored") or (acc is not None and abs(
                    float(df.loc[tid, "val_acc"]) - acc) > 1e-9):
                stats["finished_trials_lost"] += 1
        stats["restarts_from_scratch"] = sum(
            not (exp / f"trial_{tid}" / "restores.jsonl").is_file()
            for exp, tid in self.had_checkpoint)


def _pipeline_complete(root: Path) -> bool:
    try:
        stages = json.loads((root / "pipeline.json").read_text())["stages"]
    except (OSError, ValueError, KeyError):
        return False
    return bool(stages) and all(st.get("status") == "complete" for st in stages.values())


def run_scenario(scenario: str, kills: int, rng: random.Random, workdir: Path,
                 timeout: float = 600.0, **overrides: object) -> dict:
    """Run a driver-kill ``scenario`` with ``kills`` SIGKILLs; ``overrides`` replace keys of
    its experiment (e.g. ``num_samples``). Returns the figures listed in the docstring."""
    from orchestrator.runner import is_complete

    pipeline = scenario == "pipeline"
    spec = {**(_pipeline_spec(scenario, workdir / "runs") if pipeline
               else _spec(scenario, workdir / "runs", scenario)), **overrides}
    spec_file = workdir / f"{scenario}.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    root = workdir / "runs" / scenario
    stats = {"scenario": scenario, "kills": 0, "kills_survived": 0, "finished_trials_lost": 0,
             "restarts_from_scratch": 0, "resume_failures": 0, "hangs": 0,
             "rung_entries_lost": 0, "checkpoints_truncated": 0, "completed": False}
    ledger = _Ledger(root, int(spec["max_epochs"]))
    first = [sys.executable, "-m", "orchestrator.cli", "pipeline" if pipeline else "run",
             str(spec_file)]
    cmd, t0 = first, time.time()
    with open(workdir / f"{scenario}.log", "ab") as log:
        for attempt in range(kills + 1):
            ray_tmp = tempfile.mkdtemp(prefix="atf", dir="/tmp")
            kill_after = None if attempt == kills else (
                rng.uniform(3.0, 15.0) if pipeline else rng.uniform(1.0, 8.0))
            try:
                outcome, code = _attempt(cmd, _env(ray_tmp), workdir, root, kill_after, log,
                                         timeout, None if pipeline else "trial_*/checkpoint_*")
            finally:
                _kill_leftovers(ray_tmp)
                shutil.rmtree(ray_tmp, ignore_errors=True)
            if outcome != "killed":
                stats["hangs"] += int(outcome == "hung")
                stats["resume_failures"] += int(attempt > 0 and (outcome == "hung" or code))
                break
            stats["kills"] += 1
            stats["checkpoints_truncated"] += ledger.after_kill(
                scenario.endswith("_truncate"), rng)
            cmd = first if pipeline else [sys.executable, "-m", "orchestrator.cli", "resume",
                                          str(root)]
            stats["kills_survived"] += 1  # provisional: a failed resume takes it back below
    stats["completed"] = _pipeline_complete(root) if pipeline else is_complete(root)
    if stats["resume_failures"]:
        stats["kills_survived"] -= 1
    if stats["completed"]:
        ledger.settle(stats)
    stats["seconds"] = round(time.time() - t0, 1)
    return stats


def run_trial_faults(workdir: Path, timeout: float = 600.0) -> dict:
    """One trial per fault kind (tests/trainers_for_tests.py:FAULT_SPACE, grid), no kill:
    ``fail_once`` must complete after one retry from its checkpoint, ``nan`` end diverged at
    epoch 2, ``oom`` end errored with the allocator's message, ``none`` complete."""
    from trainers_for_tests import FAULT_SPACE

    from orchestrator.runner import Results, is_complete

    spec = {**_spec("trial_faults", workdir / "runs", "asha"), "space": FAULT_SPACE,
            "searcher": {"type": "grid"}, "scheduler": {"type": "fifo"}, "max_epochs": 6,
            "max_failures": 1}
    spec.pop("num_samples")
    spec_file = workdir / "trial_faults.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    ray_tmp = tempfile.mkdtemp(prefix="atf", dir="/tmp")
    t0 = time.time()
    with open(workdir / "trial_faults.log", "ab") as log:
        try:
            _, code = _attempt([sys.executable, "-m", "orchestrator.cli", "run",
                                str(spec_file)], _env(ray_tmp), workdir,
                               workdir / "runs", None, log, timeout)
        finally:
            _kill_leftovers(ray_tmp)
            shutil.rmtree(ray_tmp, ignore_errors=True)
    exp_dir = workdir / "runs" / "trial_faults"
    stats = {"scenario": "trial_faults", "completed": is_complete(exp_dir),
             "exit_code": code, "seconds": round(time.time() - t0, 1)}
    if stats["completed"]:
        df = Results.load(exp_dir).dataframe.set_index("config/fault")
        expected = {"none": ("completed", 0), "fail_once": ("completed", 1),
                    "nan": ("diverged", 0), "oom": ("errored", 1)}
        stats["as_expected"] = {
            k: bool(df.loc[k, "status"] == st and int(df.loc[k, "retries"]) == r)
            for k, (st, r) in expected.items()}
        stats["nan_epochs"] = int(df.loc["nan", "epochs"])
        stats["oom_error"] = str(df.loc["oom", "error"])[:80]
    return stats


WORKER_KILL_DRIVER = """
import json, sys, threading, time
from pathlib import Path

from ray.cluster_utils import Cluster

from orchestrator import runner
from orchestrator.spec import Experiment

spec, kill_after = json.loads(sys.argv[1]), float(sys.argv[2])
args = dict(node_ip_address="127.0.0.1", include_dashboard=False,
            object_store_memory=80 * 1024 * 1024)
cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, **args))
worker = cluster.add_node(num_cpus=2, **args)
cluster.wait_for_nodes()
exp = Experiment.from_dict(spec)
exp_dir = Path(exp.experiment_dir())
out = {}

def kill_worker():
    # three trials running and checkpointed (each keeps only its two newest checkpoints)
    while len({p.parent.name for p in exp_dir.glob("trial_*/checkpoint_*")}) < 3:
        time.sleep(0.1)
    time.sleep(kill_after)
    out["checkpointed_at_kill"] = sorted(
        d.name[6:] for d in exp_dir.glob("trial_*") if list(d.glob("checkpoint_*")))
    cluster.remove_node(worker, allow_graceful=False)
    out["killed_at"] = time.time()

threading.Thread(target=kill_worker, daemon=True).start()
try:
    res = runner.run(exp, address=cluster.address)
    out["rows"] = res.dataframe[["trial_id", "status", "retries", "epochs"]].to_dict("records")
    print("RESULT " + json.dumps(out), flush=True)
finally:
    import ray
    ray.shutdown()
    cluster.shutdown()
"""


def run_worker_kill(workdir: Path, rng: random.Random, timeout: float = 600.0) -> dict:
    """A 1-CPU head and a 2-CPU worker node (``ray.cluster_utils.Cluster``, 127.0.0.1); three
    trials at a time; the worker node is removed (its raylet killed) 0-2 s after three trials
    wrote a checkpoint. The trials it ran must continue from their checkpoints
    on the head node (``max_failures: 2``): none errored, none restarted from scratch."""
    spec = {**_spec("worker_kill", workdir / "runs", "asha"), "max_concurrent": 3,
            "scheduler": {"type": "fifo"}, "num_samples": 6, "max_epochs": 16,
            "max_failures": 2}
    ray_tmp = tempfile.mkdtemp(prefix="atw", dir="/tmp")
    env = dict(_env(ray_tmp), RAY_AUTH_MODE="disabled", RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               RAY_USAGE_STATS_ENABLED="0")
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    t0 = time.time()
    try:
        proc = subprocess.run([sys.executable, "-c", WORKER_KILL_DRIVER, json.dumps(spec),
                               str(rng.uniform(0.0, 2.0))], cwd=str(REPO), env=env,
                              capture_output=True, text=True, timeout=timeout, check=False)
    finally:
        _kill_leftovers(ray_tmp)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    (workdir / "worker_kill.log").write_text(proc.stdout + proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    stats = {"scenario": "worker_kill", "completed": bool(lines), "exit_code": proc.returncode,
             "seconds": round(time.time() - t0, 1)}
    if lines:
        out = json.loads(lines[-1][len("RESULT "):])
        exp_dir = workdir / "runs" / "worker_kill"
        rows = out["rows"]
        hit = [r["trial_id"] for r in rows if r["retries"]]
        stats.update(
            worker_removed=bool(out.get("killed_at")), trials_hit=len(hit),
            errored_trials=sum(r["status"] == "errored" for r in rows),
            completed_trials=sum(r["status"] == "completed" for r in rows),
            restarts_from_scratch=sum(
                t in out["checkpointed_at_kill"]
                and not (exp_dir / f"trial_{t}" / "restores.jsonl").is_file() for t in hit))
    return stats


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join([*SCENARIOS, *OTHER]))
    ap.add_argument("--kills", type=int, default=3, help="SIGKILLs per scenario")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    ap.add_argument("--timeout", type=float, default=600.0,
                    help="an attempt still running after this many seconds counts as a hang")
    ap.add_argument("--num-samples", type=int, default=None,
                    help="trials per driver-kill experiment (default 8; PBT: its population)")
    ap.add_argument("--epoch-s", type=float, default=None,
                    help="seconds per epoch of the curve trainer (default 0.3)")
    a = ap.parse_args(argv)
    overrides: dict = {}
    if a.num_samples:
        overrides["num_samples"] = a.num_samples
    if a.epoch_s is not None:
        overrides["data"] = {"sleep": a.epoch_s}
    rng = random.Random(a.seed)
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="archtune_faults_"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for scenario in a.scenarios.split(","):
        if scenario == "trial_faults":
            row = run_trial_faults(workdir, a.timeout)
        elif scenario == "worker_kill":
            row = run_worker_kill(workdir, rng, a.timeout)
        elif scenario == "pipeline":
            row = run_scenario(scenario, a.kills, rng, workdir, a.timeout)
        else:
            row = run_scenario(scenario, a.kills, rng, workdir, a.timeout, **overrides)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if a.out:
        Path(a.out).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
