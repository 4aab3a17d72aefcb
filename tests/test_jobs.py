"""Ray Jobs end to end: a local head started with ``ray start`` and Ray 2.60 token
authentication, an experiment submitted with ``orchestrator.jobs.submit`` and with the
``archtune submit`` command, results read back from the experiment's storage, and a client
without the token refused.

The head runs in its own process group with its own ``RAY_TMPDIR`` / ``--temp-dir`` and token
file (``ray get-auth-token --generate`` under a private ``HOME``), bound to 127.0.0.1 on free
ports. It is stopped by signalling the ``ray start --block`` process this test started, then
any process whose command line names this test's private temp dir -- never a machine-wide
``ray stop``, which would take down every Ray on the machine.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from orchestrator import jobs

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_status(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return -1


def _clean_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN",
                "RAY_AUTH_TOKEN_PATH"):
        env.pop(var, None)
    env.update(extra)
    return env


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


class LocalHead:
    """``ray start --head --block`` on 127.0.0.1 with token auth, in a private temp dir."""

    def __init__(self) -> None:
        # short: Ray's unix-socket paths under the temp dir must stay below 107 characters
        self.root = Path(tempfile.mkdtemp(prefix="atjb", dir="/tmp"))
        self.home = self.root / "home"
        self.home.mkdir()
        self.port = _free_port()
        self.dashboard_port = _free_port()
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.proc: subprocess.Popen | None = None
        self.token = ""
        self.token_path = self.home / ".ray" / "auth_token"

    def start(self) -> "LocalHead":
        gen = subprocess.run(["ray", "get-auth-token", "--generate"], capture_output=True,
                             text=True, env=_clean_env(HOME=str(self.home)), timeout=60)
        assert gen.returncode == 0, gen.stderr
        self.token = gen.stdout.strip()
        assert len(self.token) >= 32 and self.token_path.read_text().strip() == self.token
        self.env = _clean_env(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=str(self.token_path),
            RAY_TMPDIR=str(self.root),
            # keep 127.0.0.1 addresses as they are (Ray would swap in the outward IP)
            RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
            RAY_USAGE_STATS_ENABLED="0",
            RAY_DEDUP_LOGS="0",
        )
        cmd = [
            "ray", "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address=127.0.0.1", f"--port={self.port}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={self.dashboard_port}",
            "--include-dashboard=true", "--num-cpus=2", f"--temp-dir={self.root / 'ray'}",
            f"--ray-client-server-port={_free_port()}",
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
        ]
        self.log = open(self.root / "head.log", "w")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=self.root)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("ray start exited:\n" + (self.root / "head.log").read_text())
            if _http_status(f"{self.address}/api/version", self.headers) == 200:
                return self
            time.sleep(1)
        raise RuntimeError("Ray head did not come up:\n" + (self.root / "head.log").read_text())

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its own processes
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # anything that escaped the process group but belongs to this head's temp dir
        for sig, pause in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 1.0)):
            pids = _processes_mentioning(str(self.root))
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if pids:
                time.sleep(pause)
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def head():
    h = LocalHead()
    try:
        yield h.start()
    finally:
        h.stop()


def _experiment(storage: Path, name: str, *, epochs: int = 2, samples: int = 3,
                sleep_s: float = 0.05) -> dict:
    return {
        "name": name,
        "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0}}},
        "trainer": "tests.trainers_for_tests:node_probe",
        "data": {"sleep_s": sleep_s},
        "metric": "val_acc",
        "mode": "max",
        "searcher": {"type": "random", "seed": 0},
        "scheduler": {"type": "fifo"},
        "num_samples": samples,
        "max_epochs": epochs,
        "storage": str(storage),  # one machine: a local absolute path is "shared storage"
    }


@pytest.fixture()
def workdir(tmp_path) -> Path:
    """What a user's project folder holds: the experiment's trainer module (and the spec)."""
    wd = tmp_path / "project"
    (wd / "tests").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "trainers_for_tests.py", wd / "tests" / "trainers_for_tests.py")
    return wd


def _check_results(exp_dir: Path, samples: int, epochs: int) -> None:
    assert (exp_dir / "results.csv").is_file(), sorted(p.name for p in exp_dir.parent.iterdir())
    import pandas as pd

    df = pd.read_csv(exp_dir / "results.csv")
    assert len(df) == samples
    assert set(df["status"]) == {"completed"}
    assert (df["epochs"] == epochs).all()
    best = json.loads((exp_dir / "best.json").read_text())
    assert best["metric"] == "val_acc" and best["best_metric"] == pytest.approx(df["val_acc"].max())
    assert 0.0 <= best["best_config"]["x"] <= 1.0


def test_submit_with_token_and_read_results(head, workdir, tmp_path):
    storage = tmp_path / "storage"
    job_id = jobs.submit(_experiment(storage, "via_api"), head.address, working_dir=workdir,
                         token=head.token)
    assert job_id.startswith("archtune-")
    assert not list(workdir.glob("archtune_job_*")), "staged spec must not stay in the project"
    final = jobs.wait(job_id, head.address, timeout=240, token=head.token)
    out = jobs.logs(job_id, head.address, token=head.token)
    assert final == "SUCCEEDED", out[-4000:]
    assert jobs.status(job_id, head.address, token=head.token) == "SUCCEEDED"
    details = jobs.info(job_id, head.address, token=head.token)
    assert details["entrypoint"] == f"archtune run archtune_job_{job_id}.yaml --address auto"
    assert "best val_acc" in out and "via_api" in out
    _check_results(storage / "via_api", samples=3, epochs=2)
    assert any(j["job_id"] == job_id for j in jobs.list_jobs(head.address, token=head.token))


def test_cli_submit_status_logs(head, workdir, tmp_path):
    storage = tmp_path / "storage"
    spec = workdir / "experiment.yaml"
    spec.write_text(yaml.safe_dump(_experiment(storage, "via_cli")))
    env = _clean_env(RAY_AUTH_TOKEN_PATH=str(head.token_path), HOME=str(head.home))
    cli = [sys.executable, "-m", "orchestrator.cli"]
    sub = subprocess.run(cli + ["submit", "experiment.yaml", "--address", head.address],
                         cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    assert sub.returncode == 0, sub.stderr
    job_id = sub.stdout.strip().splitlines()[-1]
    assert jobs.wait(job_id, head.address, timeout=240, token=head.token) == "SUCCEEDED", \
        jobs.logs(job_id, head.address, token=head.token)[-4000:]
    # the spec inside the upload was used in place (relative to the working dir)
    assert jobs.info(job_id, head.address, token=head.token)["entrypoint"] == \
        "archtune run experiment.yaml --address auto"
    st = subprocess.run(cli + ["status", job_id, "--address", head.address], cwd=workdir,
                        env=env, capture_output=True, text=True, timeout=60)
    assert st.returncode == 0 and st.stdout.strip() == "SUCCEEDED", st.stderr
    lg = subprocess.run(cli + ["logs", job_id, "--address", head.address], cwd=workdir,
                        env=env, capture_output=True, text=True, timeout=60)
    assert lg.returncode == 0 and "best val_acc" in lg.stdout, lg.stderr
    _check_results(storage / "via_cli", samples=3, epochs=2)


def test_client_without_token_is_refused(head, tmp_path):
    assert _http_status(f"{head.address}/api/jobs/") == 401
    assert _http_status(f"{head.address}/api/jobs/", {"Authorization": "Bearer " + "0" * 64}) == 403
    assert _http_status(f"{head.address}/api/jobs/", head.headers) == 200

    with pytest.raises(jobs.JobError, match="rejected the auth token"):
        jobs.status("nope", head.address, token="0" * 64)

    empty_home = tmp_path / "nohome"
    empty_home.mkdir()
    res = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "status", "some-job", "--address",
         head.address],
        cwd=tmp_path, env=_clean_env(HOME=str(empty_home)), capture_output=True, text=True,
        timeout=120,
    )
    assert res.returncode == 1
    assert "token authentication" in res.stderr and "RAY_AUTH_TOKEN" in res.stderr, res.stderr


def test_stop_a_running_job(head, workdir, tmp_path):
    exp = _experiment(tmp_path / "storage", "to_stop", epochs=50, samples=1, sleep_s=2.0)
    job_id = jobs.submit(exp, head.address, working_dir=workdir, token=head.token)
    deadline = time.monotonic() + 120
    while jobs.status(job_id, head.address, token=head.token) == "PENDING":
        assert time.monotonic() < deadline, "job never started"
        time.sleep(1)
    assert jobs.stop(job_id, head.address, token=head.token) is True
    assert jobs.wait(job_id, head.address, timeout=120, token=head.token) == "STOPPED"
    with pytest.raises(jobs.JobError, match="still"):
        # a finished job returns at once; an unknown timeout path is checked on a fresh job
        jobs.wait(jobs.submit(exp, head.address, working_dir=workdir, token=head.token,
                              submission_id=f"{job_id}-2"),
                  head.address, timeout=0.5, token=head.token)
    jobs.stop(f"{job_id}-2", head.address, token=head.token)
    assert jobs.wait(f"{job_id}-2", head.address, timeout=120, token=head.token) == "STOPPED"


def test_token_never_sent_over_plain_http_to_another_host(monkeypatch):
    from orchestrator import jobs

    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    with pytest.raises(jobs.JobError, match="--insecure"):
        jobs.client("http://10.1.2.3:8265")
    with pytest.raises(jobs.JobError, match="plain http"):
        jobs.client("head.example.org:8265")  # no scheme means http
    jobs.check_transport("http://127.0.0.1:8265")  # loopback (an SSH tunnel) is fine
    jobs.check_transport("http://localhost:8265")
    jobs.check_transport("https://head.example.org:8265")
    from orchestrator.cli import main

    assert main(["status", "x", "--address", "http://10.1.2.3:8265"]) == 1
