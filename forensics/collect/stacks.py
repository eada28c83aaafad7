"""Evidence on a stall: stacks and /proc facts for every process of a subtree, in parallel.

Per process: /proc first (py-spy pauses the target, so read its state before touching it), then
py-spy; when py-spy cannot attach, the faulthandler dump the in-process agent registered for
*dump_signal*.  Each process is a thread-pool task; py-spy is a subprocess, so the tasks overlap
and the wall time is about the slowest process, not the sum.  Nothing here raises: a process
that exits mid-collection gives what was read before it went.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forensics.collect.procinfo import ProcInfo, read_proc, sigint_facts
from forensics.collect.proctree import descendants
from forensics.collect.pyspy import PySpyResult, dump_pyspy
from forensics.faultparse import parse_fault_text
from forensics.model import Stack

_EXCL_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# How long the faulthandler file may stay unchanged before the dump counts as complete: the
# handler writes thread by thread, each a few small writes.
_SETTLE = 0.05
_FAULT_WAIT = 2.0


@dataclass
class PidEvidence:
    pid: int
    method: str  # "py-spy" | "faulthandler" | "none"
    why: str | None  # why that method: the py-spy failure that led to the fallback, etc.
    stacks: list[Stack] = field(default_factory=list)
    procinfo: ProcInfo | None = None
    sigint: dict[str, Any] = field(default_factory=dict)  # sigint_facts(procinfo)
    error: str | None = None  # what failed, when no stacks could be taken
    hint: str | None = None  # how to fix it
    files: list[str] = field(default_factory=list)  # names written into out_dir
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["procinfo"] = self.procinfo.to_dict() if self.procinfo else None
        return data


@dataclass
class EvidenceSet:
    reason: str
    started: float  # epoch seconds
    duration: float  # from the call to complete evidence for every pid
    processes: list[PidEvidence] = field(default_factory=list)

    def by_pid(self, pid: int) -> PidEvidence | None:
        return next((p for p in self.processes if p.pid == pid), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "started": self.started,
            "duration": self.duration,
            "processes": [p.to_dict() for p in self.processes],
        }


def _write_new(out_dir: Path, name: str, text: str) -> str | None:
    """Create *name* (never through a symlink, never over an existing file); None if it fails."""
    try:
        fd = os.open(out_dir / name, _EXCL_FLAGS, 0o600)
    except OSError:
        return None
    try:
        os.write(fd, text.encode("utf-8", "replace"))
    except OSError:
        return None
    finally:
        os.close(fd)
    return name


def _stem(out_dir: Path, pid: int) -> str:
    """``<pid>`` for the first collection, ``<pid>.2``... when a later stall dumps it again."""
    stem, n = str(pid), 1
    while any((out_dir / f"{stem}{ext}").exists() for ext in (".proc.json", ".pyspy.json")):
        n += 1
        stem = f"{pid}.{n}"
    return stem


def _faulthandler_dump(pid: int, dump_signal: int, fault_file: Path) -> tuple[str | None, str]:
    """Signal *pid* and return (new text of its faulthandler file, note)."""
    try:
        before = fault_file.stat().st_size
    except OSError as exc:
        return None, f"cannot read {fault_file}: {exc.strerror}"
    try:
        os.kill(pid, dump_signal)
    except OSError as exc:
        return None, f"cannot send signal {dump_signal} to pid {pid}: {exc.strerror}"
    deadline = time.monotonic() + _FAULT_WAIT
    size, changed = before, time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.01)
        try:
            now = fault_file.stat().st_size
        except OSError:
            break
        if now != size:
            size, changed = now, time.monotonic()
        elif size > before and time.monotonic() - changed >= _SETTLE:
            break
    if size <= before:
        return None, (
            f"pid {pid} wrote nothing to {fault_file.name} within {_FAULT_WAIT:g} s of the "
            "signal (signal blocked, process in D-state, or the agent is not loaded)"
        )
    try:
        with open(fault_file, "rb") as fh:
            fh.seek(before)
            return fh.read(size - before).decode("utf-8", "replace"), ""
    except OSError as exc:
        return None, f"cannot read {fault_file}: {exc.strerror}"


# The kernel's word for a thread beats py-spy's idle/active guess (taken from the top frame's
# name): a thread spinning in Python is "R" however idle its top frame looks.
_THREAD_STATES = {"R": "running", "S": "sleeping", "D": "D-state", "T": "stopped", "t": "traced"}


def _mark_thread_states(stacks: list[Stack], info: ProcInfo | None) -> None:
    if info is None:
        return
    states = {t.tid: t.state for t in info.threads}
    for stack in stacks:
        state = states.get(stack.tid) if stack.tid is not None else None
        if state in _THREAD_STATES:
            stack.state = _THREAD_STATES[state]


def _collect_one(
    pid: int,
    out_dir: Path,
    dump_signal: int | None,
    faults_dir: Path | None,
    timeout: float,
    py_spy: list[str] | None,
    reason: str,
    native: bool,
) -> PidEvidence:
    start = time.monotonic()
    ev = PidEvidence(pid=pid, method="none", why=None)
    try:
        _collect_into(ev, out_dir, dump_signal, faults_dir, timeout, py_spy, reason, native)
    except Exception as exc:  # a collector never fails the others (DESIGN: best-effort)
        ev.error = ev.error or f"collector failed: {type(exc).__name__}: {exc}"
    ev.duration = time.monotonic() - start
    return ev


def _collect_into(
    ev: PidEvidence,
    out_dir: Path,
    dump_signal: int | None,
    faults_dir: Path | None,
    timeout: float,
    py_spy: list[str] | None,
    reason: str,
    native: bool,
) -> None:
    pid = ev.pid
    stem = _stem(out_dir, pid)
    info = read_proc(pid)
    ev.procinfo = info
    ev.sigint = sigint_facts(info)
    proc_doc = {**info.to_dict(), "sigint": ev.sigint}
    ev.files.append(_write_new(out_dir, f"{stem}.proc.json", json.dumps(proc_doc, indent=1)) or "")
    if not info.exists:
        ev.error, ev.hint = "process exited before collection", None
        return
    spy: PySpyResult = dump_pyspy(pid, timeout=timeout, native=native, py_spy=py_spy)
    if spy.raw_json:
        ev.files.append(_write_new(out_dir, f"{stem}.pyspy.json", spy.raw_json) or "")
    if spy.raw_text:
        ev.files.append(_write_new(out_dir, f"{stem}.pyspy.txt", spy.raw_text) or "")
    if spy.ok:
        ev.method, ev.why, ev.stacks = "py-spy", "py-spy attached", spy.stacks
    else:
        ev.error, ev.hint = spy.error, spy.hint
        failure = f"py-spy failed ({spy.failure}): {spy.error}"
        ev.why = failure
        fault_file = faults_dir / f"{pid}.log" if faults_dir is not None else None
        if dump_signal is None:
            ev.why = f"{failure}; no faulthandler fallback: no dump signal registered"
        elif fault_file is None or not fault_file.is_file() or fault_file.is_symlink():
            ev.why = f"{failure}; no faulthandler fallback: no faults/{pid}.log from the agent"
        else:
            text, note = _faulthandler_dump(pid, dump_signal, fault_file)
            if text is None:
                ev.why = f"{failure}; faulthandler fallback failed: {note}"
            else:
                ev.files.append(_write_new(out_dir, f"{stem}.faulthandler.txt", text) or "")
                ev.stacks = [s for b in parse_fault_text(text, pid) for s in b.threads]
                ev.method = "faulthandler"
                ev.why = f"{failure}; used the faulthandler dump the agent registered instead"
                if ev.stacks:
                    ev.error = None  # we have stacks; the hint still says how to get native ones
    _mark_thread_states(ev.stacks, info)
    ev.files = [f for f in ev.files if f]
    summary = {"reason": reason, **{k: v for k, v in ev.to_dict().items() if k != "procinfo"}}
    _write_new(out_dir, f"{stem}.evidence.json", json.dumps(summary, indent=1, default=str))
    ev.files.append(f"{stem}.evidence.json")


def collect_evidence(
    pids: list[int],
    out_dir: Path,
    reason: str,
    dump_signal: int | None,
    faults_dir: Path | None,
    timeout: float = 10.0,
    *,
    include_descendants: bool = True,
    py_spy: list[str] | None = None,
    workers: int | None = None,
    native: bool = True,
) -> EvidenceSet:
    """Collect stacks and /proc evidence for *pids* (and, by default, all their descendants).

    Writes ``<pid>.proc.json``, ``<pid>.pyspy.json``, ``<pid>.pyspy.txt`` (or
    ``<pid>.faulthandler.txt``) and ``<pid>.evidence.json`` (method, why, hint) into *out_dir*.
    *py_spy* is the argv that runs py-spy (see :func:`~forensics.collect.pyspy.dump_pyspy`);
    *workers* bounds the parallelism (1 collects one process after the other); *native*
    False skips py-spy's native unwinding, its costliest part (~0.3 CPU-s per process).
    """
    started, t0 = time.time(), time.monotonic()
    try:
        targets = descendants(pids) if include_descendants else list(dict.fromkeys(pids))
    except OSError:
        targets = list(dict.fromkeys(pids))
    result = EvidenceSet(reason=reason, started=started, duration=0.0)
    if targets:
        args = (out_dir, dump_signal, faults_dir, timeout, py_spy, reason, native)
        with ThreadPoolExecutor(max_workers=workers or min(32, len(targets))) as pool:
            futures = [pool.submit(_collect_one, pid, *args) for pid in targets]
            result.processes = [f.result() for f in futures]
    result.duration = time.monotonic() - t0
    return result
