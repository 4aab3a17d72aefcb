"""Experiments on S3: archtune's own files go through pyarrow.fs (as Ray's do), tested against
a real S3-compatible server (moto's ThreadedMotoServer) on 127.0.0.1."""
from __future__ import annotations

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
        out = subprocess.run([sys.executable, "-m", "orchestrator.cli", "resume", exp_uri],
                             env=env, capture_output=True, text=True, timeout=400)
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
