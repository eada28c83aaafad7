"""Native frames at the moment of death, for every process of the run killed by a fatal signal.

Best first: a core of the dying process (the run's processes inherit a raised RLIMIT_CORE from
the command, set before its exec), read by pystack or gdb; else the kernel's ``segfault at`` /
``traps:`` line for the library.  The shared objects' owning distributions are resolved here,
while the run's environment exists, and stored in ``stacks/<pid>.native.json``.  Cores are
deleted once read, unless ``--keep-cores`` or the user's own core limit already asked for them.
Nothing runs until a process dies.
"""

from __future__ import annotations

import os
import queue
import re
import resource
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.bundle import OUTPUT, STACKS_DIR, write_json_atomic
from forensics.collect.cores import (
    DEFAULT_CORE_CAP,
    CoreNotes,
    CorePattern,
    apport_core,
    coredumpctl_core,
    find_core,
    read_core,
    read_core_notes,
    read_core_pattern,
)
from forensics.collect.kernlog import KernelLine, KernelLog
from forensics.collect.nativelib import attribute_library

if TYPE_CHECKING:
    from forensics.supervise.supervisor import Supervisor

FATAL = {
    signal.SIGSEGV,
    signal.SIGABRT,
    signal.SIGBUS,
    signal.SIGFPE,
    signal.SIGILL,
    signal.SIGSYS,
    signal.SIGTRAP,
}
# The kernel prints its fault line as the signal is sent; give it a moment after the exit.
KERNEL_WAIT_S = 0.3
_FAULT_LINE = re.compile(r"\b(?:segfault at|general protection|traps:|trap (?:divide|invalid))")
_PID_IN_LINE = re.compile(r"\[(\d+)\]")


def fault_line_pid(text: str) -> int | None:
    """The pid a kernel fault line names (``python3[6000]: segfault at ...``)."""
    if not _FAULT_LINE.search(text):
        return None
    m = _PID_IN_LINE.search(text)
    return int(m.group(1)) if m else None


class DeathWatch:
    def __init__(
        self, supervisor: Supervisor, *, keep_cores: bool = False, cap: int = DEFAULT_CORE_CAP
    ) -> None:
        self.sup = supervisor
        self.keep_cores = keep_cores
        self.pattern: CorePattern = read_core_pattern()
        soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
        self._user_soft = soft
        self.limit: int | None = None
        if self.pattern.collectable and soft == 0:
            self.limit = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
        self.kernel: KernelLog | None = None
        self._kernel_lines: list[KernelLine] = []
        self._cwds: dict[int, tuple[str, str | None]] = {}
        self._queue: queue.Queue[tuple[int, int, float, int] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_cwd = os.getcwd()

    def prepare(self) -> None:
        if not self.pattern.collectable:
            why = (
                "core_pattern is empty"
                if self.pattern.kind == "none"
                else "core_pattern pipes to a handler forensics cannot read "
                f"({self.pattern.pattern})"
            )
            self.sup.event(
                "collector",
                name="cores",
                ok=False,
                reason=f"{why}: native frames of a crash come from the kernel's fault line and "
                "faulthandler only (a plain core_pattern, systemd-coredump or apport gives cores)",
            )
        else:
            self.sup.event(
                "collector",
                name="cores",
                ok=True,
                core_pattern=self.pattern.pattern,
                pattern_kind=self.pattern.kind,
                limit_bytes=self.limit,
                user_limit=None if self._user_soft == resource.RLIM_INFINITY else self._user_soft,
            )
        log = KernelLog.open_or_reason()
        if isinstance(log, KernelLog):
            self.kernel = log
        self._thread = threading.Thread(target=self._work, daemon=True, name="forensics-deaths")
        self._thread.start()

    def child_setup(self) -> None:  # pragma: no cover - runs in the forked child
        if self.limit is not None:
            try:
                _, hard = resource.getrlimit(resource.RLIMIT_CORE)
                resource.setrlimit(resource.RLIMIT_CORE, (self.limit, hard))
            except (OSError, ValueError):
                pass

    def tick(self, sup: Supervisor) -> None:
        # Where each process runs, read while it lives: a relative core_pattern puts its core
        # in the cwd of the process at its death, and /proc has nothing once it is dead.
        for pid in list(sup.procs):
            if pid in self._cwds:
                continue
            try:
                cwd = os.readlink(f"/proc/{pid}/cwd")
            except OSError:
                cwd = ""
            try:
                exe: str | None = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                exe = None
            self._cwds[pid] = (cwd, exe)
        self._read_kernel()

    def _read_kernel(self) -> None:
        if self.kernel is None:
            return
        try:
            new = [ln for ln in self.kernel.read_new() if fault_line_pid(ln.text) is not None]
        except OSError:
            self.kernel = None
            return
        with self._lock:
            self._kernel_lines.extend(new)

    def on_exit(self, pid: int, signum: int | None, core_dumped: bool | None) -> None:
        """Called by the supervisor for every exit of a run process (any thread)."""
        if signum not in FATAL:
            return
        try:
            offset = os.stat(self.sup.bundle / OUTPUT).st_size
        except OSError:
            offset = 0
        self._queue.put((pid, signum, time.time(), offset))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._collect(*item)
            except Exception as exc:  # one bad core must not stop the next one
                self.sup.event(
                    "collector", name="cores", ok=False, pid=item[0], reason=f"{exc!r}"[:300]
                )

    def _collect(self, pid: int, signum: int, died: float, offset: int) -> None:
        record: dict[str, Any] = {
            "pid": pid,
            "signal": signal.Signals(signum).name,
            "died": died,
            "output_offset": offset,
            "problems": [],
        }
        cwd, exe = self._cwds.get(pid, ("", None))
        core, notes, source = self._find_core(pid, cwd, died)
        if core is not None and notes is not None:
            size = core.stat().st_size
            record["core"] = {
                "source": source,
                "bytes": size,
                "limit_bytes": self.limit,
                "cut": self.limit is not None and size >= self.limit,
            }
            read = read_core(core, exe)
            if isinstance(read, str):
                record["problems"].append(read)
            else:
                record["method"] = read.method
                record["read_s"] = round(read.seconds, 3)
                record["crashing_tid"] = notes.pid
                record["threads"] = [t.to_dict() for t in read.threads]
                record["stack_s"] = round(time.time() - died, 3)
            record["libraries"] = self._libraries(read, notes)
            record["core"]["kept"] = self._dispose(core, source)
            if record["core"]["kept"]:
                record["core"]["path"] = str(core)
        elif self.pattern.collectable:
            record["problems"].append(
                f"no core found for pid {pid} (core_pattern {self.pattern.pattern!r}, cwd {cwd!r})"
            )
        record["resolved_s"] = round(time.time() - died, 3)
        deadline = died + KERNEL_WAIT_S
        while time.time() < deadline:
            time.sleep(0.05)
        self._read_kernel()
        with self._lock:
            lines = [ln for ln in self._kernel_lines if fault_line_pid(ln.text) == pid]
        if lines:
            record["kernel_lines"] = [ln.text for ln in lines]
            record.setdefault("libraries", {})
            for name in _kernel_libraries(record["kernel_lines"]):
                if name not in record["libraries"]:
                    record["libraries"][name] = _owner(name)
        write_json_atomic(self.sup.bundle / STACKS_DIR / f"{pid}.native.json", record)

    def _find_core(
        self, pid: int, cwd: str, died: float
    ) -> tuple[Path | None, CoreNotes | None, str]:
        kind = self.pattern.kind
        if kind == "file":
            cwds = [c for c in (cwd, self._run_cwd) if c]
            found = find_core(self.pattern, pid, cwds, died - 5.0)
            return (found[0], found[1], "file") if found else (None, None, kind)
        stash = self.sup.bundle / STACKS_DIR / f".core.{pid}"
        if kind == "systemd-coredump":
            core = coredumpctl_core(pid, stash)
        elif kind == "apport":
            core = apport_core(pid, self._cwds.get(pid, ("", None))[1], stash)
        else:
            core = None
        notes = read_core_notes(core) if core is not None else None
        return core, notes, kind

    def _dispose(self, core: Path, source: str) -> bool:
        """Delete the core once read; keep it with --keep-cores or when the user asked for it."""
        wanted_by_user = source == "file" and self._user_soft != 0
        if self.keep_cores or wanted_by_user:
            return True
        try:
            core.unlink()
        except OSError:
            return True
        return False

    def _libraries(self, read: object, notes: CoreNotes) -> dict[str, dict[str, Any]]:
        names: set[str] = set()
        threads = getattr(read, "threads", [])
        for thread in threads:
            for frame in thread.frames:
                if frame.native and frame.library:
                    names.add(frame.library)
        return {name: _owner(notes.files.get(name, name)) for name in sorted(names)}

    def finish(self, sup: Supervisor) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=120.0)
        if self.kernel is not None:
            self.kernel.close()


_KERNEL_LIB = re.compile(r" in ([^\s\[]+)\[")


def _kernel_libraries(lines: list[str]) -> list[str]:
    return [m.group(1) for ln in lines for m in [_KERNEL_LIB.search(ln)] if m]


def _owner(path: str) -> dict[str, Any]:
    # dpkg knows /lib/... while the maps say /usr/lib/... (merged /usr): then by name.
    found = attribute_library(path) or (
        attribute_library(os.path.basename(path)) if os.path.isabs(path) else None
    )
    if found is not None and os.path.isabs(path):
        found = type(found)(path, found.distribution, found.version, found.system)
    if found is None:
        return {"path": path, "distribution": None, "version": None, "system": False}
    return {
        "path": found.path,
        "distribution": found.distribution,
        "version": found.version,
        "system": found.system,
    }
