"""An experiment on a real two-node Ray cluster on this machine, through ``orchestrator.run``.

The cluster (``ray.cluster_utils.Cluster``: a head and one worker node, one CPU each, bound to
127.0.0.1) and the driver live in a child Python process: the pytest process may already hold
the session's local Ray (``ray_session``), and a driver can only join one cluster. The child
gets its own ``RAY_TMPDIR`` so its session files and address file never meet another Ray on the
machine, and always shuts its cluster down in a ``finally`` (the nodes' reaper processes
also take them down if the child is killed).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

DRIVER = textwrap.dedent(
    """
    import json, sys

    from ray.cluster_utils import Cluster

    from orchestrator import runner
    from orchestrator.spec import Experiment

    storage = sys.argv[1]
    node_args = dict(num_cpus=1, node_ip_address="127.0.0.1", include_dashboard=False,
                     object_store_memory=80 * 1024 * 1024)
    # gcs_server_port defaults to 0 here: the GCS picks a free port
    cluster = Cluster(initialize_head=True, head_node_args=node_args)
    try:
        cluster.add_node(**node_args)
        cluster.wait_for_nodes()
        exp = Experiment.from_dict({
            "name": "multinode",
            "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
            "trainer": "tests.trainers_for_tests:node_probe",
            "data": {"sleep_s": 0.3},
            "metric": "val_acc",
            "mode": "max",
            "searcher": {"type": "random", "seed": 0},
            "scheduler": {"type": "fifo"},
            "num_samples": 6,
            "max_epochs": 3,
            "storage": storage,
        })
        res = runner.run(exp, address=cluster.address)
        import ray
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"]) if ray.is_initialized() else []
        out = {
            "path": res.path,
            "rows": res.dataframe.to_dict(orient="records"),
            "best_config": res.best_config,
            "cluster_nodes": nodes,
            "head_node_id": cluster.head_node.node_id,
            "worker_node_ids": [n.node_id for n in cluster.worker_nodes],
        }
        print("RESULT " + json.dumps(out, default=str), flush=True)
    finally:
        import ray
        ray.shutdown()
        cluster.shutdown()
    """
)


def _child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    env.update(
        RAY_TMPDIR=str(tmp),  # session dir + ray_current_cluster stay private to this test
        RAY_AUTH_MODE="disabled",
        # Ray rewrites a 127.0.0.1 address to the machine's outward IP when connecting
        # (resolve_ip_for_localhost); this switch keeps loopback so the GCS, bound to 127.0.0.1,
        # is reachable. It only affects `ray start` worker nodes otherwise (not used here).
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_DEDUP_LOGS="0",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


def _run_driver(code: str, ray_tmp: Path, *args: str) -> tuple[dict, str]:
    """Run a driver script in a child Python (its Ray under ``ray_tmp``, removed afterwards);
    returns the JSON it printed after ``RESULT `` and its whole stdout."""
    import shutil

    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=ROOT, env=_child_env(ray_tmp), capture_output=True, text=True, timeout=280,
        )
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, (proc.stdout[-3000:] + "\n" + proc.stderr[-6000:])
    return json.loads(lines[-1][len("RESULT "):]), proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_trials_run_on_both_nodes(tmp_path):
    # A short private temp root: Ray's unix-socket paths must stay under 107 characters.
    ray_tmp = Path(tempfile.mkdtemp(prefix="atmn", dir="/tmp"))
    storage = tmp_path / "storage"
    out, _ = _run_driver(DRIVER, ray_tmp, str(storage))

    rows = out["rows"]
    assert len(rows) == 6
    assert all(r["status"] == "completed" for r in rows), rows
    assert all(int(r["epochs"]) == 3 for r in rows)
    node_ids = {r["node_id"] for r in rows}
    expected = {out["head_node_id"], *out["worker_node_ids"]}
    assert len(expected) == 2
    assert node_ids == expected, f"trials ran on {node_ids}, cluster nodes {expected}"
    assert out["best_config"] and 0.0 <= out["best_config"]["x"] <= 1.0

    exp_dir = Path(out["path"])
    assert exp_dir == storage / "multinode"
    assert (exp_dir / "results.csv").is_file() and (exp_dir / "best.json").is_file()
    assert (exp_dir / "tensorboard").is_dir()


GROWING = textwrap.dedent(
    """
    import json, logging, sys, threading, time

    from ray.cluster_utils import Cluster

    from orchestrator import runner
    from orchestrator.spec import Experiment

    storage, record = sys.argv[1], sys.argv[2]
    logging.basicConfig(stream=sys.stdout, format="LOG %(message)s")
    logging.getLogger("archtune").setLevel(logging.INFO)
    args = dict(node_ip_address="127.0.0.1", include_dashboard=False,
                object_store_memory=80 * 1024 * 1024)
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, **args))
    out = {"head": cluster.head_node.node_id}

    def experiment():
        exp = Experiment.from_dict({
            "name": "growing",
            "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
            "trainer": "tests.trainers_for_tests:node_probe",
            "data": {"sleep_s": 1.0, "record_to": record},
            "searcher": {"type": "random", "seed": 0},
            "num_samples": 12, "max_epochs": 8, "storage": storage,
        })
        res = runner.run(exp, address=cluster.address)
        out["rows"] = res.dataframe.to_dict(orient="records")

    try:
        # the experiment runs in a thread: Cluster.add_node must run in the main thread
        worker = threading.Thread(target=experiment)
        worker.start()
        deadline = time.time() + 120
        while time.time() < deadline:  # a 2-CPU node joins once trials run on the head alone
            try:
                if open(record).read().count("\\n") >= 2:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        out["joined"] = time.time()
        out["node"] = cluster.add_node(num_cpus=2, **args).node_id
        worker.join()
        print("RESULT " + json.dumps(out, default=str), flush=True)
    finally:
        import ray
        ray.shutdown()
        cluster.shutdown()
    """
)


def _most_at_once(lines: list[dict], sleep_s: float) -> int:
    spans: dict[str, list[float]] = {}
    for r in lines:
        s = spans.setdefault(r["trial"], [math.inf, -math.inf])
        s[0], s[1] = min(s[0], r["t"] - sleep_s), max(s[1], r["t"])
    events = sorted([(a, 1) for a, _ in spans.values()] + [(b, -1) for _, b in spans.values()])
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_concurrency_grows_when_a_node_joins(tmp_path):
    """No ``max_concurrent``: one trial at a time on a 1-CPU head (limit 2: one running, one
    waiting); once a 2-CPU node joins mid-experiment, the limit rises to 4 and three trials run
    at once, on both nodes. (8-epoch trials of 1 s: with 4-epoch ones, actor start-up on the
    loaded 2-core machine made the overlap too short to see.)"""
    ray_tmp = Path(tempfile.mkdtemp(prefix="atgr", dir="/tmp"))
    record = tmp_path / "epochs.jsonl"
    out, stdout = _run_driver(GROWING, ray_tmp, str(tmp_path / "storage"), str(record))
    assert len(out["rows"]) == 12 and all(r["status"] == "completed" for r in out["rows"])
    epochs = [json.loads(x) for x in record.read_text().splitlines()]
    before = [r for r in epochs if r["t"] < out["joined"]]
    after = [r for r in epochs if r["t"] > out["joined"] + 3]
    assert before and {r["node_id"] for r in before} == {out["head"]}
    assert _most_at_once(before, 1.0) == 1
    assert out["node"] in {r["node_id"] for r in after}, "no trial ran on the node that joined"
    # the limit follows the cluster (a frozen one stays at 2): 3 CPUs run 3 trials at once
    assert _most_at_once(after, 1.0) == 3
    assert "LOG concurrency limit 2 -> 4 (the cluster's resources changed)" in stdout
