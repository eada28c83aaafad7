"""The on-disk bundle (schema ``forensics.bundle/1``): appending writers, tolerant readers.

Imported by the in-process agents, so it uses the standard library only and never raises into
the user's code from a writer.  Every file is opened with ``O_NOFOLLOW`` so a symlink planted in
a bundle directory is never written through.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

BUNDLE_SCHEMA = "forensics.bundle/1"

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
OUTPUT = "output.log"
# {"t", "offset"} lines: how large output.log was at a time, so its lines can be dated.
OUTPUT_INDEX = "output.idx.jsonl"
WORKERS_DIR = "workers"
FAULTS_DIR = "faults"
STACKS_DIR = "stacks"
SYSTEM_DIR = "system"
SUBDIRS = (WORKERS_DIR, FAULTS_DIR, STACKS_DIR, SYSTEM_DIR)

# Environment variables through which the supervisor enables the agents in the run's processes.
ENV_BUNDLE = "FORENSICS_BUNDLE"
ENV_RUN_ID = "FORENSICS_RUN_ID"
# The real-time signal on which the agent of a pytest process dumps all its threads' stacks into
# ``faults/<pid>.log`` (the agent defines it too: it cannot import this module).
DUMP_SIGNAL = signal.SIGRTMIN + 6 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2

_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def running_phase(ended: dict[str, str]) -> str:
    """The phase a test is in, from the outcomes of the phases it has finished.

    The agent writes a record when a phase ends, not when it starts (one write per phase is
    what it costs the user's run); pytest's order gives the rest: setup, then call only when
    setup passed, then teardown.
    """
    if "call" in ended or "teardown" in ended:
        return "teardown"
    if "setup" in ended:
        return "call" if ended["setup"] == "passed" else "teardown"
    return "setup"


class BundleError(Exception):
    """A bundle that cannot be created or read."""


def create_bundle_dir(path: Path, *, force: bool = False) -> Path:
    """Create a new bundle directory, 0700, refusing to reuse one unless *force*.

    *force* reuses only an empty directory or an earlier forensics bundle, and removes only the
    files a bundle holds: ``--bundle . --force`` in a checkout must not cost the checkout.
    """
    if path.is_symlink():
        raise BundleError(f"{path} is a symlink; give a real directory path for the bundle")
    if path.exists():
        if not force:
            raise BundleError(f"{path} already exists; pass --force to overwrite it")
        if not path.is_dir():
            raise BundleError(f"{path} exists and is not a directory")
        _clear_bundle(path)
    else:
        try:
            path.mkdir(mode=0o700, parents=False)
        except FileNotFoundError:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700)
        except OSError as exc:
            raise BundleError(f"cannot create bundle directory {path}: {exc.strerror}") from exc
    os.chmod(path, 0o700)
    for sub in SUBDIRS:
        (path / sub).mkdir(mode=0o700, exist_ok=True)
    return path


# What a bundle holds: top-level files, and the file names inside each of its folders.
_TOP_FILES = re.compile(
    r"(?:manifest\.json|events\.jsonl|output\.log|report\.html|signals\.jsonl"
    r"|\.manifest\.json\.\d+\.tmp)"
)
_SUB_FILES = {
    WORKERS_DIR: re.compile(r"[\w.-]+\.jsonl"),
    FAULTS_DIR: re.compile(r"\d+\.log"),
    STACKS_DIR: re.compile(r"\d+(?:\.\d+)?\.[\w.-]+"),
    SYSTEM_DIR: re.compile(r"[\w.-]+\.(?:json|log)"),
}


def _is_earlier_bundle(path: Path) -> bool:
    return read_manifest(path).get("schema") == BUNDLE_SCHEMA


def _clear_bundle(path: Path) -> None:
    """Remove the files an earlier run left in *path*: only bundle files, no symlink followed.

    Anything else (a user's file that landed in the bundle) stays where it is.
    """
    entries = list(path.iterdir())
    if entries and not _is_earlier_bundle(path):
        raise BundleError(
            f"{path} is not empty and is not a forensics bundle; --force only replaces an "
            "earlier bundle, so give a new or empty directory"
        )
    for entry in entries:
        name = entry.name
        if name in _SUB_FILES:
            if entry.is_symlink() or not entry.is_dir():
                # A planted link would send the agents' writes elsewhere.
                entry.unlink()
                continue
            for inner in entry.iterdir():
                if _SUB_FILES[name].fullmatch(inner.name) and (
                    inner.is_symlink() or not inner.is_dir()
                ):
                    inner.unlink()
        elif _TOP_FILES.fullmatch(name) and (entry.is_symlink() or not entry.is_dir()):
            entry.unlink()


def open_append(path: Path | str) -> int:
    """Open *path* for appending (created 0600), refusing to follow a symlink."""
    return os.open(path, _APPEND_FLAGS, 0o600)


class JsonlWriter:
    """Append one JSON object per line; each line is written with a single ``write`` call.

    O_APPEND plus one write per record keeps lines whole even when two threads (or a forked
    child that has not yet switched files) share the descriptor.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._fd: int | None = open_append(path)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode(
            "utf-8", "replace"
        )
        with self._lock:
            if self._fd is None:
                return
            try:
                os.write(self._fd, line)
            except OSError:
                # A full disk or a closed descriptor must never fail the user's run.
                pass

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.close(self._fd)
                finally:
                    self._fd = None


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace *path* with *data* by writing a new file and renaming it over the old one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=str)
        fh.write("\n")
    os.replace(tmp, path)


# --- readers ---------------------------------------------------------------------------------

MAX_LINE = 4 * 1024 * 1024
MAX_MANIFEST = 4 * 1024 * 1024
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def open_bundle_file(path: Path | str) -> BinaryIO:
    """Open a file of a bundle for reading: a regular file only, never through a symlink.

    A bundle may come from anyone: ``events.jsonl`` linked to ``/dev/zero``, to a FIFO that
    blocks forever or to a file of the reader's, is refused (``OSError``) rather than read.
    """
    fd = os.open(path, _READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_regular_file(path: Path) -> bool:
    """A regular file that is not a symlink (what bundle readers accept)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_real_dir(path: Path) -> bool:
    """A directory that is not a symlink: a bundle's folders are read only when they are."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def read_bundle_bytes(path: Path | str, limit: int) -> bytes:
    """At most *limit* bytes of a bundle file (``OSError`` when it is not a regular file)."""
    with open_bundle_file(path) as fh:
        return fh.read(limit)


def _bounded_lines(fh: BinaryIO, limit: int) -> Iterator[bytes | None]:
    """The lines of *fh*, each read with at most *limit* bytes in memory; ``None`` for a line
    that is longer (its rest is read and dropped in pieces)."""
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit:
            yield raw
            continue
        while raw and not raw.endswith(b"\n"):
            raw = fh.readline(limit)
        yield None


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the JSON objects of *path*, skipping lines that are truncated or not objects.

    A supervisor killed mid-write leaves a partial last line; a hostile bundle may hold
    anything: a line is never read whole before its size is known, and a path that is not a
    regular file (a symlink, a device, a FIFO) yields nothing.
    """
    try:
        fh = open_bundle_file(path)
    except OSError:
        return
    with fh:
        for raw in _bounded_lines(fh, MAX_LINE):
            if raw is None:
                continue
            try:
                obj = json.loads(raw.decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(obj, dict):
                yield obj


def read_manifest(bundle: Path) -> dict[str, Any]:
    try:
        raw = read_bundle_bytes(bundle / MANIFEST, MAX_MANIFEST + 1)
        if len(raw) > MAX_MANIFEST:
            return {}
        data = json.loads(raw.decode("utf-8", "replace"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_bundle(path: Path) -> bool:
    return is_regular_file(path / MANIFEST) or is_regular_file(path / EVENTS)


def check_bundle(path: Path) -> Path:
    """Return *path* if it looks like a bundle, else raise a :class:`BundleError` saying why."""
    if not path.exists():
        raise BundleError(f"{path} does not exist; give the bundle directory that wrap printed")
    if not path.is_dir():
        raise BundleError(f"{path} is not a directory; give a bundle directory written by wrap")
    if not is_bundle(path):
        raise BundleError(
            f"{path} is not a forensics bundle (no {MANIFEST} or {EVENTS}); "
            "for raw logs use `forensics analyze`"
        )
    return path
