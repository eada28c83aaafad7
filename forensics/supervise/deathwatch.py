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
import resource
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.blame import blame_frames
from forensics.bundle import OUTPUT, STACKS_DIR, write_json_atomic
from forensics.collect.cores import (
    DEFAULT_CORE_CAP,
    CoreNotes,
    CorePattern,
    CoreStacks,
    apport_core,
    coredumpctl_core,
    find_core,
    read_core,
    read_core_notes,
    read_core_pattern,
)
from forensics.collect.kernlog import KernelLog
from forensics.collect.nativelib import resolve_owner
from forensics.kernel_lines import KernelLine, parse_fault_line

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
CAPTURE_TAIL = 32 * 1024
CAPTURE_LINES = 400


def fault_line_pid(text: str) -> int | None:
    """The pid a kernel fault line names (``python3[6000]: segfault at ...``)."""
    fault = parse_fault_line(text)
    return fault.pid if fault is not None else None


@dataclass
class _Death:
    pid: int
    signal: int
    died: float
    offset: int  # output.log's size when the exit was seen: what was printed before it
    captured: list[str]  # the end of pytest's capture files of the dead process
    core: Path | None = None
    notes: CoreNotes | None = None


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
        self._hard_zero = hard == 0
        if self.pattern.collectable and soft == 0 and not self._hard_zero:
            self.limit = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
        self.kernel: KernelLog | None = None
        self._kernel_lines: list[KernelLine] = []
        self._cwds: dict[int, tuple[str, str | None]] = {}
        self._queue: queue.Queue[_Death | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._run_cwd = os.getcwd()
        # pytest's fd capture sends a test's stdout/stderr to unlinked temporary files, which
        # vanish with the process: what a library printed before abort() is only there.
        self._captures: dict[int, list[int]] = {}
        self._capture_checked: dict[int, float] = {}
        self._handled: set[int] = set()

    def prepare(self) -> None:
        if self._hard_zero:
            self.sup.event(
                "collector",
                name="cores",
                ok=False,
                reason="the hard core size limit is 0 (ulimit -Hc): no process of the run can "
                "leave a core, so native frames come from the kernel's fault line and "
                "faulthandler only; raise the hard limit (ulimit -Hc unlimited, or the "
                "container's --ulimit core=-1) to get them",
            )
        elif not self.pattern.collectable:
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
        now = time.monotonic()
        for pid in list(sup.procs):
            # Often enough to catch a test that crashes within its first second.
            if pid not in self._captures and now - self._capture_checked.get(pid, 0.0) > 0.25:
                self._capture_checked[pid] = now
                self._hold_captures(pid)
        self._read_kernel()

    def _hold_captures(self, pid: int) -> None:
        held = []
        for fd in (1, 2):
            link = f"/proc/{pid}/fd/{fd}"
            try:
                target = os.readlink(link)
                if not target.endswith(" (deleted)"):
                    continue
                held.append(os.open(link, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue
        if held:
            with self._lock:
                self._captures[pid] = held

    def _release_captures(self, pid: int, read: bool) -> list[str]:
        with self._lock:
            fds = self._captures.pop(pid, [])
        lines: list[str] = []
        for fd in fds:
            try:
                if read:
                    size = os.fstat(fd).st_size
                    start = max(0, size - CAPTURE_TAIL)
                    text = os.pread(fd, size - start, start).decode("utf-8", "replace")
                    lines.extend(ln for ln in text.splitlines() if ln.strip())
            except OSError:
                pass
            finally:
                os.close(fd)
        return lines[-CAPTURE_LINES:]

    def _read_kernel(self) -> None:
        with self._lock:  # the loop's tick and the collecting thread both read
            if self.kernel is None:
                return
            try:
                new = [ln for ln in self.kernel.read_new() if fault_line_pid(ln.text) is not None]
            except OSError:
                self.kernel = None
                return
            self._kernel_lines.extend(new)

    def on_exit(self, pid: int, signum: int | None, core_dumped: bool | None) -> None:
        """Called by the supervisor for every exit of a run process (any thread)."""
        if signum not in FATAL:
            if pid in self._captures:
                self._release_captures(pid, read=False)
            return
        died = time.time()
        try:
            offset = os.stat(self.sup.bundle / OUTPUT).st_size
        except OSError:
            offset = 0
        death = _Death(pid, signum, died, offset, self._release_captures(pid, read=True))
        self._handled.add(pid)
        if self.pattern.kind == "file" and core_dumped is not False:
            # Claimed at once: with a pattern like ``core`` the next crash in the same
            # directory replaces this file.
            self._claim(death)
        self._queue.put(death)

    def _claim(self, death: _Death) -> None:
        cwd = self._cwds.get(death.pid, ("", None))[0]
        cwds = [c for c in (cwd, self._run_cwd) if c]
        found = find_core(self.pattern, death.pid, cwds, death.died - 5.0)
        if found is None:
            return
        core, death.notes = found
        death.core = core
        if self._user_soft != 0:
            return  # the user asked for cores: this one stays where the kernel put it
        target = self.sup.bundle / STACKS_DIR / f"{death.pid}.core"
        try:
            os.rename(core, target)
        except OSError:
            # Another filesystem: out of the kernel's way under a name of our own, same place.
            target = core.with_name(f".forensics-core.{death.pid}.{self.sup.run_id}")
            try:
                os.rename(core, target)
            except OSError:
                return
        death.core = target

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._collect(item)
            except Exception as exc:  # one bad core must not stop the next one
                self.sup.event(
                    "collector", name="cores", ok=False, pid=item.pid, reason=f"{exc!r}"[:300]
                )

    def _sweep(self, sup: Supervisor) -> None:
        """Cores of run processes whose death was not seen (no process-events connector):
        read them now rather than leave them in the user's directories."""
        if self.pattern.kind != "file" or self.limit is None:
            return
        cwds = sorted({c for c, _ in self._cwds.values() if c} | {self._run_cwd})
        pending = [pid for pid in list(sup.procs) if pid not in self._handled]
        paths = {
            path for pid in pending for cwd in cwds for path in self.pattern.candidates(pid, cwd)
        }
        for path in sorted(paths):
            try:
                if path.is_symlink() or path.stat().st_mtime < sup.start_time:
                    continue
            except OSError:
                continue
            notes = read_core_notes(path)
            if notes is None or notes.pid not in pending or notes.pid in self._handled:
                continue
            signum = notes.signal if notes.signal in FATAL else int(signal.SIGABRT)
            self._handled.add(notes.pid)
            self._queue.put(_Death(notes.pid, signum, path.stat().st_mtime, 0, [], path, notes))

    def _collect(self, death: _Death) -> None:
        pid, died = death.pid, death.died
        record: dict[str, Any] = {
            "pid": pid,
            "signal": signal.Signals(death.signal).name,
            "died": died,
            "output_offset": death.offset,
            "captured_output": death.captured,
            "problems": [],
        }
        cwd, exe = self._cwds.get(pid, ("", None))
        core, notes, source = death.core, death.notes, "file"
        if core is None and self.pattern.kind != "file":
            core, notes, source = self._find_core(pid)
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
                if record["core"]["cut"]:
                    record["problems"].append(
                        f"the core was cut at the {self.limit} byte limit before the stacks "
                        "(the kernel writes them last)"
                    )
            else:
                record["method"] = read.method
                record["read_s"] = round(read.seconds, 3)
                record["crashing_tid"] = notes.pid
                record["threads"] = [t.to_dict() for t in read.threads]
                record["stack_s"] = round(time.time() - died, 3)
            record["libraries"] = self._libraries(read, notes)
            kept = self._dispose(core, source, pid)
            record["core"]["kept"] = kept is not None
            if kept is not None:
                record["core"]["path"] = str(kept)
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

    def _find_core(self, pid: int) -> tuple[Path | None, CoreNotes | None, str]:
        kind = self.pattern.kind
        stash = self.sup.bundle / STACKS_DIR / f".core.{pid}"
        if kind == "systemd-coredump":
            core = coredumpctl_core(pid, stash)
        elif kind == "apport":
            core = apport_core(pid, self._cwds.get(pid, ("", None))[1], stash)
        else:
            core = None
        notes = read_core_notes(core) if core is not None else None
        return core, notes, kind

    def _dispose(self, core: Path, source: str, pid: int) -> Path | None:
        """Delete the core once read, or keep it (in the bundle) with --keep-cores; a core the
        user's own limit asked for stays where the kernel put it.  The kept path, or None."""
        if source == "file" and self._user_soft != 0:
            return core
        if self.keep_cores:
            target = self.sup.bundle / STACKS_DIR / f"{pid}.core"
            if core != target:
                try:
                    shutil.move(str(core), target)
                except OSError:
                    return core
            return target
        try:
            core.unlink()
        except OSError:
            return core
        return None

    def _libraries(self, read: CoreStacks | str, notes: CoreNotes) -> dict[str, dict[str, Any]]:
        """Owners of the faulting and blamed frames' objects (the rest would cost seconds)."""
        if isinstance(read, str) or not read.threads:
            return {}
        crashed = next((t for t in read.threads if t.tid == notes.pid), read.threads[0])
        names = {f.library for f in blame_frames(crashed.frames) if f is not None and f.library}
        return {name: _owner(notes.files.get(name, name)) for name in sorted(names)}

    def finish(self, sup: Supervisor) -> None:
        self._sweep(sup)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=120.0)
        with self._lock:
            if self.kernel is not None:
                self.kernel.close()
                self.kernel = None
            held = [fd for fds in self._captures.values() for fd in fds]
            self._captures.clear()
        for fd in held:
            os.close(fd)


def _kernel_libraries(lines: list[str]) -> list[str]:
    """The files the kernel's fault lines say the faulting instruction was in."""
    return [f.library for ln in lines if (f := parse_fault_line(ln)) and f.library]


def _owner(path: str) -> dict[str, Any]:
    return resolve_owner(path).to_dict()
