"""Experiments on S3: archtune's own files go through pyarrow.fs (as Ray's do), tested against
a real S3-compatible server (moto's ThreadedMotoServer) on 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from trainers_for_tests import TOY_SPACE

from orchestrator.runner import Results, is_complete

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
BUCKET = "archtune-test"


@pytest.fixture()
def s3(monkeypatch):
    """The server's environment (credentials + endpoint), also set in this process."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


def _listing(prefix: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, path = pafs.FileSystem.from_uri(prefix)
    return [i.path for i in fs.get_file_info(pafs.FileSelector(path, recursive=True,
                                                                  allow_not_found=True))]


def test_results_round_trip_on_s3(s3):
    uri = f"s3://{BUCKET}/runs/rt"
    df = pd.DataFrame([{"trial_id": "a", "status": "completed", "val_acc": 0.5}])
    res = Results(best_config={"x": 1}, best_metric=0.5, dataframe=df, path=uri,
                  best_trial="a")
    res.save(complete=False)
    assert not is_complete(uri) and f"{BUCKET}/runs/rt/results.csv" in _listing(uri)
    res.save()
    loaded = Results.load(uri)
    assert is_complete(uri) and loaded.best_config == {"x": 1} and loaded.best_trial == "a"
    assert list(loaded.dataframe["trial_id"]) == ["a"]


def _cli(args, env, **kw):
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", *args], env=env,
                            start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kw)


@pytest.mark.slow
def test_run_sigkill_resume_and_refused_rerun_on_s3(s3, tmp_path):
    uri = f"s3://{BUCKET}/runs"
    spec = {"name": "s3exp", "space": TOY_SPACE, "trainer": "trainers_for_tests:curve",
            "searcher": {"type": "random", "seed": 1}, "num_samples": 3, "max_epochs": 8,
            "max_concurrent": 2, "data": {"sleep": 0.4}, "storage": uri}
    spec_file = tmp_path / "s3.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    ray_tmp = tempfile.mkdtemp(prefix="ats", dir="/tmp")
    env = dict(os.environ, PYTHONPATH=f"{TESTS}:{REPO}", RAY_TMPDIR=ray_tmp, **s3)
    env.pop("TUNE_GLOBAL_CHECKPOINT_S", None)
    exp_uri = f"{uri}/s3exp"
    proc = _cli(["run", str(spec_file)], env, cwd=str(tmp_path))
    try:
        deadline = time.time() + 240
        while not any("checkpoint_000003" in p for p in _listing(exp_uri)):
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.time() < deadline, "no checkpoint reached S3 in time"
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert not is_complete(exp_uri)
        # resumed with the endpoint given as an option alone (no AWS_ENDPOINT_URL)
        no_endpoint = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
        opts = json.dumps({"endpoint_override": s3["AWS_ENDPOINT_URL"], "region": "us-east-1"})
        out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", exp_uri,
                              "--storage-filesystem", opts],
                             env=no_endpoint, capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        res = Results.load(exp_uri)
        assert len(res.dataframe) == 3 and set(res.dataframe["status"]) == {"completed"}
        assert (res.dataframe["epochs"] == 8).all() and res.best_metric is not None
        names = _listing(exp_uri)
        assert any("/tensorboard/" in n and "tfevents" in n for n in names)
        assert any(n.endswith("experiment.yaml") for n in names)
        again = subprocess.run([sys.executable, "-m", "orchestrator.cli", "run", str(spec_file)],
                               env=env, capture_output=True, text=True, timeout=200)
        assert again.returncode == 2 and "already holds a run" in again.stderr, again.stderr
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        import shutil

        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture()
def s3_no_env(s3, monkeypatch):
    """The server reachable only through explicit options (no AWS_ENDPOINT_URL)."""
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    return {"endpoint_override": s3["AWS_ENDPOINT_URL"], "access_key": "testing",
            "secret_key": "testing", "region": "us-east-1"}


def test_storage_filesystem_option_runs_and_reports_on_an_s3_endpoint(ray_session, s3_no_env):
    from orchestrator import Experiment, run
    from orchestrator.report import make_report
    from orchestrator.storage import filesystem_from_options

    exp = Experiment.from_dict(dict(
        name="minio", space=TOY_SPACE, trainer="trainers_for_tests:curve",
        searcher={"type": "random", "seed": 2}, num_samples=2, max_epochs=2, max_concurrent=2,
        storage=f"s3://{BUCKET}/opt", storage_filesystem=s3_no_env))
    res = run(exp)  # the endpoint comes from the experiment file's option alone
    assert len(res.dataframe) == 2 and res.best_metric is not None
    fs = filesystem_from_options(s3_no_env)
    uri = f"s3://{BUCKET}/opt/minio"
    assert is_complete(uri, fs) and Results.load(uri, fs).best_trial == res.best_trial
    rep = make_report(uri, filesystem=fs)
    assert rep["best"]["trial"] == res.best_trial
    import pyarrow.fs as pafs

    names = {i.base_name for i in fs.get_file_info(
        pafs.FileSelector(f"{BUCKET}/opt/minio/report", allow_not_found=True))}
    assert "best_so_far.png" in names and rep["plots"]
    assert all(p.startswith(f"s3://{BUCKET}/opt/minio/report/") for p in rep["plots"])


def test_storage_filesystem_option_is_checked():
    from orchestrator import Experiment
    from orchestrator.errors import SpecError

    base = dict(name="x", space=TOY_SPACE, trainer="trainers_for_tests:curve")
    with pytest.raises(SpecError, match="storage_filesystem.*s3://"):
        Experiment.from_dict({**base, "storage": "/tmp/x",
                              "storage_filesystem": {"endpoint_override": "http://h:1"}})
    with pytest.raises(SpecError, match="storage_filesystem.*unknown option"):
        Experiment.from_dict({**base, "storage": "s3://b/x",
                              "storage_filesystem": {"endpoint": "http://h:1"}})


def test_archtune_report_on_s3(s3, tmp_path):
    """``archtune report s3://...`` reads the results and writes the report next to them."""
    uri = f"s3://{BUCKET}/runs/rep"
    df = pd.DataFrame([{"trial_id": t, "status": s, "val_acc": v, "config/x": x,
                        "timestamp": 100 + i, "time_total_s": 1.0}
                       for i, (t, s, v, x) in enumerate([("a", "completed", 0.5, 0.1),
                                                         ("b", "duplicate", 0.9, 0.2),
                                                         ("c", "completed", 0.7, 0.3)])])
    Results(best_config={"x": 0.3}, best_metric=0.7, dataframe=df, path=uri,
            best_trial="c").save()
    env = dict(os.environ, PYTHONPATH=f"{TESTS}:{REPO}", **s3)
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "report", uri], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trial c" in out.stdout
    env.pop("AWS_ENDPOINT_URL")  # the endpoint as an option instead
    bad = subprocess.run([sys.executable, "-m", "orchestrator.cli", "report", uri,
                          "--storage-filesystem", "{endpoint: x}"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--storage-filesystem: unknown option" in bad.stderr
    opts = f'{{endpoint_override: "{s3["AWS_ENDPOINT_URL"]}", region: us-east-1}}'
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "report", uri,
                          "--no-plots", "--storage-filesystem", opts], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "trial c" in out.stdout, out.stderr[-2000:]
    assert f"{BUCKET}/runs/rep/report/best_so_far.png" in _listing(uri)
