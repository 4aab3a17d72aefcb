"""Run experiments on a remote Ray cluster through the Ray Jobs API.

``submit`` uploads a working directory (your code, space files, the experiment file) to the
cluster and starts ``archtune run <spec> --address auto`` there as a Ray job; the experiment's
driver then runs on the head node, so the laptop can disconnect. ``status``, ``logs``, ``stop``
and ``wait`` take the job id that ``submit`` returned.

``address`` is the head's dashboard address, e.g. ``http://127.0.0.1:8265`` (after
``ray dashboard cluster.yaml``). Clusters started with ``RAY_AUTH_MODE=token`` (Ray >= 2.60)
need the cluster's token: it is read from ``RAY_AUTH_TOKEN``, else the file named by
``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``, and sent as an ``Authorization: Bearer``
header. The experiment's ``storage`` should be shared storage (``s3://...`` or an NFS path
every node mounts): results written to a relative path land in the job's temporary directory.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import tempfile
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from spaces.errors import ArchtuneError
from orchestrator.errors import SpecError

__all__ = [
    "JobError",
    "auth_headers",
    "client",
    "submit",
    "status",
    "info",
    "logs",
    "follow_logs",
    "stop",
    "wait",
    "list_jobs",
    "TERMINAL_STATUSES",
    "check_transport",
]

TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})

# Never worth uploading; .gitignore / .rayignore in the working dir are honoured by Ray as well.
DEFAULT_EXCLUDES = (
    ".git",
    "**/__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".hypothesis",
    "runs/",
    "archtune_results/",
)

_SPEC_PREFIX = "archtune_job_"


class JobError(ArchtuneError, RuntimeError):
    """A Ray Jobs request failed (cluster unreachable, refused, unknown job, timeout)."""


def read_token() -> str | None:
    """The cluster token: ``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidates = [Path(path).expanduser()] if path else []
    candidates.append(Path.home() / ".ray" / "auth_token")
    for candidate in candidates:
        try:
            token = candidate.read_text().strip()
        except OSError:
            continue
        if token:
            return token
    return None


def auth_headers(token: str | None = None) -> dict[str, str]:
    """``{"Authorization": "Bearer <token>"}`` when a token is given or found, else ``{}``.

    Sending a token to a cluster without token auth is harmless, so none is withheld.
    """
    token = token or read_token()
    return {"Authorization": f"Bearer {token}"} if token else {}


def client(address: str, *, token: str | None = None, headers: Mapping[str, str] | None = None,
           insecure: bool = False):
    """A ``ray.job_submission.JobSubmissionClient`` for ``address`` with the auth header set.

    Raises JobError rather than send a token over plain ``http://`` to a host that is not
    this machine (anyone on the path could read it), unless ``insecure``."""
    from ray.job_submission import JobSubmissionClient

    all_headers = auth_headers(token)
    all_headers.update(headers or {})
    if all_headers.get("Authorization") and not insecure:
        check_transport(address)
    with _translated(address):
        return JobSubmissionClient(_normalise_address(address), headers=all_headers)


def submit(
    exp: Any,
    address: str,
    *,
    working_dir: str | Path | None = ".",
    runtime_env: Mapping[str, Any] | None = None,
    submission_id: str | None = None,
    token: str | None = None,
    entrypoint_num_cpus: float | None = None,
    metadata: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> str:
    """Start ``archtune run <spec> --address auto`` on the cluster at ``address``; return the job id.

    Args:
        exp: the experiment: a path to its YAML file, a dict, or an ``Experiment`` (anything with
            ``to_dict()``). A file inside ``working_dir`` is run from its place in the upload (so
            paths relative to it keep working); any other experiment is written into the upload as
            ``archtune_job_<id>.yaml``.
        address: the dashboard address of the head, e.g. ``http://127.0.0.1:8265``.
        working_dir: directory uploaded to the cluster and used as the job's working directory
            (``None``: upload only the experiment file).
        runtime_env: extra Ray runtime environment (``pip``, ``env_vars``, ``excludes``, ...);
            a ``working_dir`` key here overrides the argument.
        submission_id: job id to use (default: ``archtune-<random>``).
        token: cluster auth token (default: see ``read_token``).
        insecure: send the token over plain ``http://`` to a non-loopback host anyway.
        entrypoint_num_cpus: CPUs reserved for the driver (default 0: it only orchestrates).
        metadata: string labels stored with the job.

    Raises:
        JobError: the cluster refused or could not be reached.
        SpecError: the experiment is invalid (checked here, before anything is uploaded;
            the trainer is resolved on the cluster), or ``exp``/``working_dir`` is missing.
    """
    job_id = submission_id or f"archtune-{uuid.uuid4().hex[:12]}"
    env = dict(runtime_env or {})
    staging: Path | None = None
    written: Path | None = None
    _precheck(exp)
    try:
        if env.get("working_dir") is None:
            if working_dir is None:
                staging = Path(tempfile.mkdtemp(prefix="archtune_submit_"))
                env["working_dir"] = str(staging)
            else:
                wd = Path(working_dir).expanduser().resolve()
                if not wd.is_dir():
                    raise SpecError(f"working_dir {str(working_dir)!r} is not a directory")
                env["working_dir"] = str(wd)
        if isinstance(env["working_dir"], (str, Path)) and "://" not in str(env["working_dir"]):
            env.setdefault("excludes", list(DEFAULT_EXCLUDES))
        upload_root = Path(env["working_dir"]) if "://" not in str(env["working_dir"]) else None

        spec_arg, written = _place_spec(exp, upload_root, job_id)
        entrypoint = f"archtune run {shlex.quote(spec_arg)} --address auto"
        job_client = client(address, token=token, insecure=insecure)
        with _translated(address):
            return job_client.submit_job(
                entrypoint=entrypoint,
                runtime_env=env,
                submission_id=job_id,
                entrypoint_num_cpus=entrypoint_num_cpus,
                metadata={"archtune_spec": spec_arg, **dict(metadata or {})},
            )
    finally:
        # The package is uploaded inside submit_job, so the staged file can go now.
        if written is not None:
            written.unlink(missing_ok=True)
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def status(job_id: str, address: str, *, token: str | None = None,
           insecure: bool = False) -> str:
    """The job's status: ``PENDING``, ``RUNNING``, ``STOPPED``, ``SUCCEEDED`` or ``FAILED``."""
    job_client = client(address, token=token, insecure=insecure)
    with _translated(address, job_id):
        return str(job_client.get_job_status(job_id).value)


def info(job_id: str, address: str, *, token: str | None = None,
           insecure: bool = False) -> dict[str, Any]:
    """Everything Ray records about the job (status, message, entrypoint, times, metadata)."""
    job_client = client(address, token=token, insecure=insecure)
    with _translated(address, job_id):
        details = job_client.get_job_info(job_id)
    dump = getattr(details, "model_dump", None) or getattr(details, "dict", None)
    data = dump() if dump is not None else dict(vars(details))
    if data.get("status") is not None:
        data["status"] = str(getattr(data["status"], "value", data["status"]))
    return data


def logs(job_id: str, address: str, *, token: str | None = None,
           insecure: bool = False) -> str:
    """The job driver's output so far (everything ``archtune run`` printed on the head)."""
    job_client = client(address, token=token, insecure=insecure)
    with _translated(address, job_id):
        return job_client.get_job_logs(job_id)


def follow_logs(job_id: str, address: str, *, token: str | None = None,
           insecure: bool = False) -> Iterator[str]:
    """Yield chunks of the job's output as they appear, until the job ends."""
    import asyncio

    job_client = client(address, token=token, insecure=insecure)
    stream = job_client.tail_job_logs(job_id)
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                with _translated(address, job_id):
                    chunk = loop.run_until_complete(stream.__anext__())
            except StopAsyncIteration:
                return
            yield chunk
    finally:
        loop.run_until_complete(stream.aclose())
        loop.close()


def stop(job_id: str, address: str, *, token: str | None = None,
           insecure: bool = False) -> bool:
    """Ask the cluster to stop the job; ``False`` if it had already finished."""
    job_client = client(address, token=token, insecure=insecure)
    with _translated(address, job_id):
        return bool(job_client.stop_job(job_id))


def wait(
    job_id: str,
    address: str,
    timeout: float | None = None,
    *,
    poll_s: float = 1.0,
    token: str | None = None,
    insecure: bool = False,
) -> str:
    """Block until the job ends; return its final status (``SUCCEEDED``/``FAILED``/``STOPPED``).

    Raises:
        JobError: still not finished after ``timeout`` seconds (the job keeps running).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    job_client = client(address, token=token, insecure=insecure)
    while True:
        with _translated(address, job_id):
            current = str(job_client.get_job_status(job_id).value)
        if current in TERMINAL_STATUSES:
            return current
        if deadline is not None and time.monotonic() >= deadline:
            raise JobError(
                f"job {job_id} is still {current} after {timeout:g} s; it keeps running "
                f"(check with `archtune status {job_id} --address {address}`)"
            )
        time.sleep(poll_s if deadline is None else max(0.0, min(poll_s, deadline - time.monotonic())))


def list_jobs(address: str, *, token: str | None = None,
           insecure: bool = False) -> list[dict[str, Any]]:
    """Every job the cluster knows: ``[{"job_id", "status", "entrypoint", "start_time"}]``."""
    job_client = client(address, token=token, insecure=insecure)
    with _translated(address):
        jobs = job_client.list_jobs()
    return [
        {
            "job_id": j.submission_id or j.job_id,
            "status": str(getattr(j.status, "value", j.status)),
            "entrypoint": j.entrypoint,
            "start_time": j.start_time,
        }
        for j in jobs
    ]


# --------------------------------------------------------------------------- helpers


def check_transport(address: str) -> None:
    """JobError when ``address`` is plain ``http://`` to a host other than the loopback."""
    import ipaddress
    from urllib.parse import urlsplit

    url = urlsplit(_normalise_address(address))
    if url.scheme != "http":
        return
    host = url.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise JobError(f"refusing to send the cluster token over plain http:// to {host}: use "
                       f"https://, an SSH tunnel to 127.0.0.1 (ray dashboard cluster.yaml), or "
                       f"--insecure")


def _normalise_address(address: str) -> str:
    address = str(address).strip()
    if not address:
        raise JobError("no cluster address: pass --address http://HEAD:8265 (the dashboard port)")
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


def _place_spec(exp: Any, upload_root: Path | None, job_id: str) -> tuple[str, Path | None]:
    """Return (spec path as the entrypoint sees it, file written for this submission or None)."""
    if isinstance(exp, (str, Path)):
        path = Path(exp).expanduser()
        if not path.is_file():
            raise SpecError(f"{exp}: experiment file not found")
        if upload_root is not None:
            try:
                rel = path.resolve().relative_to(upload_root.resolve())
                return rel.as_posix(), None
            except ValueError:
                pass
        text = path.read_text()
        suffix = path.suffix if path.suffix in (".yaml", ".yml", ".json") else ".yaml"
    else:
        text = yaml.safe_dump(_as_dict(exp), sort_keys=False)
        suffix = ".yaml"
    if upload_root is None:
        raise JobError(
            "an experiment object needs a local working_dir to travel in; "
            "pass the experiment as a file inside a remote working_dir instead"
        )
    name = f"{_SPEC_PREFIX}{job_id}{suffix}"
    target = upload_root / name
    target.write_text(text)
    return name, target


def _precheck(exp: Any) -> None:
    """Reject a bad experiment here, before anything is uploaded, and warn about storage.

    The trainer is not resolved: its module may only exist inside the uploaded working dir.
    """
    from .spec import Experiment

    try:
        if isinstance(exp, Experiment):
            spec = exp
        elif isinstance(exp, (str, Path)):
            spec = Experiment.from_yaml(Path(exp).expanduser(), validate=False)
        else:
            spec = Experiment.from_dict(_as_dict(exp), validate=False)
        spec.validate(check_trainer=False)
    except TypeError as e:
        raise SpecError(str(e)) from None
    storage = spec.storage
    if "://" in storage or Path(storage).expanduser().is_absolute():
        return
    warnings.warn(
        f"experiment storage {storage!r} is a relative path: on the cluster it resolves inside "
        "the job's temporary working directory on the head node. Use shared storage "
        "(storage: s3://bucket/prefix or an NFS path such as /mnt/shared/archtune).",
        UserWarning,
        stacklevel=3,
    )


def _as_dict(exp: Any) -> dict:
    if isinstance(exp, Mapping):
        return dict(exp)
    for method in ("to_dict", "dict"):
        fn = getattr(exp, method, None)
        if callable(fn):
            return fn()
    raise TypeError(
        f"cannot submit {type(exp).__name__}: pass an experiment file path, a dict, "
        "or an Experiment with to_dict()"
    )


@contextlib.contextmanager
def _translated(address: str, job_id: str | None = None) -> Iterator[None]:
    """Turn the Jobs SDK's errors (ConnectionError, RuntimeError, AuthenticationError) into
    a JobError that says what to do."""
    from ray.exceptions import RayError

    try:
        yield
    except JobError:
        raise
    except (ConnectionError, RuntimeError, RayError) as e:
        raise JobError(_explain(address, e, job_id)) from e


def _explain(address: str, error: Exception, job_id: str | None = None) -> str:
    text = str(error)
    if "401" in text or "Authentication required" in text:
        hint = (
            "the cluster uses token authentication and no token was sent: set RAY_AUTH_TOKEN, "
            "RAY_AUTH_TOKEN_PATH, or copy the head's ~/.ray/auth_token to this machine"
        )
    elif "403" in text or "Authentication failed" in text:
        hint = "the cluster rejected the auth token: use the token the head was started with"
    elif job_id is not None and ("does not exist" in text or "404" in text):
        hint = f"no job {job_id!r} on this cluster (`archtune status` lists ids via the dashboard)"
    elif isinstance(error, ConnectionError) or "Failed to connect" in text:
        hint = (
            "cannot reach the Ray dashboard there; is the cluster up and the address the dashboard "
            "port (default 8265), e.g. after `ray dashboard cluster.yaml`?"
        )
    else:
        hint = text
    return f"Ray Jobs request to {address} failed: {hint}" + ("" if hint == text else f"\n{text}")
