"""archtune's own files (``experiment.yaml``, ``results.csv``, ``best.json``, ``retries.json``,
TensorBoard logs) on the filesystem Ray Tune writes its state to: a local folder or a URI
(``s3://``, ``gs://``, ...) through ``pyarrow.fs``, optionally with an explicit filesystem
(e.g. ``pyarrow.fs.S3FileSystem(endpoint_override=...)`` for MinIO).
"""
from __future__ import annotations

import os
import posixpath
import uuid
from pathlib import Path
from typing import Any

__all__ = ["is_uri", "use_filesystem", "resolve", "join", "exists", "is_file", "read_text", "write_text",
           "makedirs", "Location"]


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


_FILESYSTEMS: dict[str, Any] = {}


def use_filesystem(uri: str, filesystem: Any) -> None:
    """In this process, reach every URI under ``uri`` through ``filesystem`` when no other is
    given (``archtune resume --storage-filesystem``: callbacks restored from Ray's saved state
    were pickled without one)."""
    _FILESYSTEMS[uri.rstrip("/") + "/"] = filesystem


def _registered(uri: str) -> Any:
    hits = [p for p in _FILESYSTEMS if (uri.rstrip("/") + "/").startswith(p)]
    return _FILESYSTEMS[max(hits, key=len)] if hits else None


class Location:
    """A path on a ``pyarrow.fs`` filesystem, with the URI or local path it came from."""

    def __init__(self, path: str | os.PathLike, filesystem: Any = None) -> None:
        import pyarrow.fs as pafs

        self.uri = str(path)
        if filesystem is None and is_uri(self.uri):
            filesystem = _registered(self.uri)
        if filesystem is not None:
            self.fs = filesystem
            self.path = _strip_scheme(self.uri)
        elif is_uri(self.uri):
            self.fs, self.path = pafs.FileSystem.from_uri(self.uri)
        else:
            self.fs = pafs.LocalFileSystem()
            self.path = str(Path(self.uri).expanduser().resolve())
            self.uri = self.path

    def __truediv__(self, name: str) -> "Location":
        out = Location.__new__(Location)
        out.fs = self.fs
        out.path = posixpath.join(self.path, name)
        out.uri = (posixpath.join(self.uri, name) if is_uri(self.uri)
                   else str(Path(self.uri) / name))
        return out

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    @property
    def is_local(self) -> bool:
        import pyarrow.fs as pafs

        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self.path).type == pafs.FileType.File

    def makedirs(self) -> None:
        self.fs.create_dir(self.path, recursive=True)

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def write_bytes(self, data: bytes) -> None:
        """Write ``data``; on a local disk atomically (a reader never sees half a file)."""
        parent = posixpath.dirname(self.path)
        if parent:
            self.fs.create_dir(parent, recursive=True)
        if not self.is_local:  # object stores replace whole objects anyway
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)
            return
        tmp = f"{self.path}.tmp-{uuid.uuid4().hex[:8]}"
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        os.replace(tmp, self.path)

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def listdir(self) -> list[str]:
        """Names directly inside this folder (empty when it does not exist)."""
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(self.path, allow_not_found=True)
        return [posixpath.basename(i.path) for i in self.fs.get_file_info(sel)]


def resolve(path: "str | os.PathLike | Location", filesystem: Any = None) -> Location:
    """``path`` (local path, URI or Location) as a :class:`Location`."""
    if isinstance(path, Location):
        return path
    return Location(path, filesystem)


def join(path: "str | os.PathLike | Location", *names: str) -> Location:
    loc = resolve(path)
    for n in names:
        loc = loc / n
    return loc


def exists(path: "str | os.PathLike | Location") -> bool:
    return resolve(path).exists()


def is_file(path: "str | os.PathLike | Location") -> bool:
    return resolve(path).is_file()


def read_text(path: "str | os.PathLike | Location") -> str:
    return resolve(path).read_text()


def write_text(path: "str | os.PathLike | Location", text: str) -> None:
    resolve(path).write_text(text)


def makedirs(path: "str | os.PathLike | Location") -> None:
    resolve(path).makedirs()


# pyarrow.fs.S3FileSystem keyword arguments an experiment file may set
S3_OPTIONS = ("endpoint_override", "region", "scheme", "access_key", "secret_key",
              "session_token", "anonymous", "force_virtual_addressing", "request_timeout",
              "connect_timeout", "allow_bucket_creation")


def check_filesystem_options(options: Any, storage: str) -> str | None:
    """What is wrong with an experiment's ``storage_filesystem`` options (``None`` when they
    are fine): a mapping of ``pyarrow.fs.S3FileSystem`` arguments, for an ``s3://`` storage."""
    if not isinstance(options, dict):
        return f"expected a mapping of S3 options, got {options!r}"
    if not str(storage).startswith("s3://"):
        return f"only applies to an 's3://' storage, got storage {storage!r}"
    unknown = sorted(set(options) - set(S3_OPTIONS))
    if unknown:
        return f"unknown option(s) {unknown}; valid: {list(S3_OPTIONS)}"
    return None


def filesystem_from_options(options: dict | None) -> Any:
    """``pyarrow.fs.S3FileSystem(**options)`` (``None`` for no options)."""
    if not options:
        return None
    import pyarrow.fs as pafs

    return pafs.S3FileSystem(**options)


def _strip_scheme(uri: str) -> str:
    return uri.split("://", 1)[1] if is_uri(uri) else uri
