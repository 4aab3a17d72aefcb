"""Local Ray instances that outlive their archtune driver.

When ``archtune run``/``resume`` starts a local Ray, it records the Ray session directory and
its own process id in a small file under :func:`registry_dir`; a clean exit removes it. A
driver killed with SIGKILL leaves the file behind, and its Ray (GCS, raylet, workers) keeps
running. :func:`stop_leftovers` (called before archtune starts the next local Ray) finds those
processes by that session directory only, never by name, and stops them (SIGTERM, then SIGKILL
after a grace period); :func:`leftover_report` lists them with the command to stop them.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

__all__ = ["forget", "leftover_report", "register", "registry_dir", "session_pids",
           "stop_leftovers"]

log = logging.getLogger("archtune")


def registry_dir() -> Path:
    """Where the records live: ``$ARCHTUNE_STATE_DIR`` or ``~/.cache/archtune/local_ray``."""
    base = os.environ.get("ARCHTUNE_STATE_DIR")
    return Path(base) if base else Path.home() / ".cache" / "archtune" / "local_ray"


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def register(session_dir: str) -> Path:
    """Record that this process started the local Ray of ``session_dir``."""
    d = registry_dir()
    d.mkdir(parents=True, exist_ok=True)
    f = d / f"{Path(session_dir).name}-{os.getpid()}.json"
    f.write_text(json.dumps({"session_dir": session_dir, "pid": os.getpid(),
                             "pid_start": _start_time(os.getpid())}))
    return f


def forget(record: Path | None) -> None:
    """Remove a record (the driver shut its Ray down)."""
    if record is not None:
        record.unlink(missing_ok=True)


def session_pids(session_dir: str) -> list[int]:
    """That Ray's processes: those whose command line names ``session_dir`` or that hold a
    file in it open (Ray renames some processes, e.g. ``ray::DashboardAgent``, but each keeps
    its log files in the session directory open); this process excluded."""
    needle = session_dir.rstrip("/")
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            if needle.encode() in (d / "cmdline").read_bytes() or _holds_file_in(d, needle):
                out.append(int(d.name))
        except OSError:
            continue
    return out


def _holds_file_in(proc: Path, folder: str) -> bool:
    try:
        fds = list((proc / "fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target == folder or target.startswith(folder + "/"):
            return True
    return False


def _orphaned(rec: dict) -> bool:
    """The driver that wrote ``rec`` is gone (dead, or its pid now belongs to another)."""
    start = _start_time(int(rec["pid"]))
    return start is None or start != rec.get("pid_start")


def _records() -> list[tuple[Path, dict]]:
    out = []
    for f in sorted(registry_dir().glob("*.json")):
        try:
            out.append((f, json.loads(f.read_text())))
        except (OSError, ValueError):
            continue
    return out


def leftover_report() -> list[str]:
    """One line per local Ray left behind by a killed driver, with the command that stops
    exactly its processes."""
    lines = []
    for _, rec in _records():
        if _orphaned(rec):
            pids = session_pids(rec["session_dir"])
            if pids:
                lines.append(f"Ray of session {rec['session_dir']} (driver {rec['pid']} gone): "
                             f"{len(pids)} processes; stop them with: kill "
                             f"{' '.join(map(str, pids))}")
    return lines


def stop_leftovers(grace_s: float = 5.0) -> int:
    """Stop the processes of every local Ray whose driver is gone; returns how many were
    stopped. Records of finished sessions are removed."""
    stopped = 0
    for f, rec in _records():
        if not _orphaned(rec):
            continue
        pids = session_pids(rec["session_dir"])
        if pids:
            log.warning("stopping a Ray left behind by a killed archtune driver (session %s, "
                        "%d processes)", rec["session_dir"], len(pids))
        stopped += _terminate(pids, grace_s)
        if _settle(rec["session_dir"], grace_s):
            f.unlink(missing_ok=True)
    return stopped


def _settle(session_dir: str, grace_s: float) -> bool:
    """Wait until no process of ``session_dir`` is left, killing any that appear meanwhile (a
    raylet may have been forking a worker as it was stopped). True when none is left."""
    deadline = time.time() + grace_s
    while True:
        late = session_pids(session_dir)
        if not late:
            return True
        if time.time() >= deadline:
            return False
        _terminate(late, 0.5)
        time.sleep(0.1)


def _terminate(pids: list[int], grace_s: float) -> int:
    done = 0
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in pids:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        if sig == signal.SIGTERM:
            done = len(alive)
            deadline = time.time() + grace_s
            while alive and time.time() < deadline:
                alive = [p for p in alive if _start_time(p) is not None]
                time.sleep(0.1)
        pids = alive
        if not pids:
            break
    return done
