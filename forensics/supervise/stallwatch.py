"""Hangs: notice a test that makes no progress, take evidence of its whole subtree, end it.

Progress is read from the breadcrumbs the pytest agent appends to ``workers/<pid>.jsonl``: a
process with a test open and no new breadcrumb for ``--hang-timeout`` seconds is stalled.  The
evidence (stacks of every thread of the worker and of everything it started, /proc state,
signal masks) is taken before anything is signalled, then the worker's tree is ended with
SIGTERM and, after a grace period, SIGKILL, so xdist reports the test and the run goes on.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from forensics.bundle import DUMP_SIGNAL, FAULTS_DIR, STACKS_DIR, WORKERS_DIR, running_phase
from forensics.collect.proctree import cpu_percent, rss_bytes, state_and_name
from forensics.collect.pyspy import configured_py_spy
from forensics.collect.stacks import EvidenceSet, collect_evidence

if TYPE_CHECKING:
    from forensics.supervise.run_state import RunState
    from forensics.supervise.supervisor import Supervisor

SCAN_S = 0.5
TERM_GRACE_S = 3.0
_PROGRESS_KINDS = {
    "test-start",
    "phase-end",
    "test-end",
    "collect-start",
    "collect-end",
    "session-start",
}


@dataclass
class _Worker:
    pid: int
    worker: str | None = None
    test: str | None = None
    # Outcomes of the phases the current test has finished.
    ended: dict[str, str] = field(default_factory=dict)
    last_progress: float = 0.0
    stalled: bool = False


class BreadcrumbTail:
    """Reads the new complete lines of each process's journal; keeps a partial last line."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._offsets: dict[str, int] = {}
        self._partial: dict[str, bytes] = {}

    def read(self) -> list[tuple[int, dict[str, Any]]]:
        found: list[tuple[int, dict[str, Any]]] = []
        try:
            names = os.listdir(self.directory)
        except OSError:
            return found
        for name in names:
            stem = name.removesuffix(".jsonl")
            if not stem.isdecimal():
                continue
            path = self.directory / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            offset = self._offsets.get(name, 0)
            if size <= offset:
                continue
            try:
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = self._partial.pop(name, b"") + fh.read(size - offset)
            except OSError:
                continue
            self._offsets[name] = size
            *lines, rest = data.split(b"\n")
            if rest:
                self._partial[name] = rest
            for line in _since_last_test_start(lines):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    found.append((int(stem), record))
        return found


_TEST_START = (b'"kind":"test-start"', b'"kind": "test-start"')
_SESSION_START = b'"session-start"'


def _since_last_test_start(lines: list[bytes]) -> list[bytes]:
    """What the watch needs of a batch of records: the session's, and the current test's.

    Parsing every record of a fast suite would cost the supervisor a core's worth of JSON while
    the workers need both cores; the records before the last test start only say there was
    progress, which the last test start says too.
    """
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if _TEST_START[0] in line or _TEST_START[1] in line:
            earlier = [ln for ln in lines[:index] if _SESSION_START in ln]
            return [*earlier, *lines[index:]]
    return lines


class StallWatch:
    def __init__(self, supervisor: Supervisor, hang_timeout: float) -> None:
        self.sup = supervisor
        self.hang_timeout = hang_timeout
        self.tail = BreadcrumbTail(supervisor.bundle / WORKERS_DIR)
        self.workers: dict[int, _Worker] = {}
        self._next_scan = 0.0
        self._threads: list[threading.Thread] = []

    def tick(self, sup: Supervisor) -> None:
        now = time.monotonic()
        if now < self._next_scan:
            return
        self._next_scan = now + SCAN_S
        for pid, record in self.tail.read():
            self._apply(pid, record, now)
        for state in self.workers.values():
            if state.stalled or state.test is None:
                continue
            idle = now - state.last_progress
            if idle >= self.hang_timeout and psutil.pid_exists(state.pid):
                state.stalled = True
                thread = threading.Thread(
                    target=self._handle_stall,
                    args=(state, idle),
                    name="forensics-stall",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)

    def _apply(self, pid: int, record: dict[str, Any], now: float) -> None:
        kind = record.get("kind")
        if kind not in _PROGRESS_KINDS:
            return
        state = self.workers.setdefault(pid, _Worker(pid))
        state.last_progress = now
        if kind == "session-start":
            worker = record.get("worker")
            state.worker = worker if isinstance(worker, str) else None
            if record.get("role") == "controller":
                # The controller runs no tests; its workers are watched instead.
                self.workers.pop(pid, None)
        elif kind == "test-start":
            test = record.get("nodeid")
            state.test = test if isinstance(test, str) else None
            state.ended = {}
        elif kind == "phase-end":
            phase, outcome = record.get("phase"), record.get("outcome")
            if isinstance(phase, str) and isinstance(outcome, str):
                state.ended[phase] = outcome
            if phase == "teardown":
                state.test, state.ended = None, {}
        elif kind == "test-end":
            state.test, state.ended = None, {}

    def _handle_stall(self, state: _Worker, idle: float) -> None:
        sup = self.sup
        sup.event(
            "stall",
            pid=state.pid,
            worker=state.worker,
            test=state.test,
            phase=running_phase(state.ended),
            idle_s=round(idle, 3),
            limit_s=self.hang_timeout,
            reason="hang-timeout",
            # Busy or blocked: a spinning loop and a deadlock are different bugs.
            cpu_percent=cpu_percent(state.pid),
            rss_bytes=rss_bytes(state.pid),
        )
        evidence = take_evidence(sup, [state.pid], f"hang-timeout: {state.test}")
        pids = [p.pid for p in evidence.processes] or [state.pid]
        end_processes(sup, pids, reason="hang-timeout")

    def join(self, timeout: float = 15.0) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)


def take_evidence(
    sup: RunState, pids: list[int], reason: str, *, native: bool = True, timeout: float = 10.0
) -> EvidenceSet:
    """Stacks and /proc facts of *pids* and their descendants, journalled as one event."""
    py_spy = configured_py_spy()
    evidence = collect_evidence(
        pids,
        sup.bundle / STACKS_DIR,
        reason,
        dump_signal=int(DUMP_SIGNAL),
        faults_dir=sup.bundle / FAULTS_DIR,
        timeout=timeout,
        native=native,
        py_spy=py_spy,
    )
    processes = []
    for ev in evidence.processes:
        info = ev.procinfo
        processes.append(
            {
                "pid": ev.pid,
                "method": ev.method,
                "why": ev.why,
                "error": ev.error,
                "hint": ev.hint,
                "sigint": ev.sigint,
                "files": ev.files,
                "duration": round(ev.duration, 3),
                "argv": sup.redactor.argv(info.cmdline) if info else [],
                "ppid": info.ppid if info else None,
                "state": info.state if info else None,
                "d_state": bool(info and info.d_state),
                "wchan": info.wchan if info else None,
                "full_pipes": [p.fd for p in info.full_pipes] if info else [],
            }
        )
    sup.event(
        "evidence",
        reason=reason,
        root_pids=pids,
        duration_s=round(evidence.duration, 3),
        processes=processes,
    )
    return evidence


def end_processes(sup: RunState, pids: list[int], reason: str, grace: float = TERM_GRACE_S) -> None:
    """SIGTERM, a grace period, then SIGKILL: children before parents get the same deadline.

    Waits by looking, never by waitpid: the supervisor's loop alone reaps its children, and
    a status collected here would be lost to it.
    """
    _send(sup, pids, signal.SIGTERM, reason)
    alive = _wait_gone(pids, grace)
    if alive:
        _send(sup, alive, signal.SIGKILL, reason)
        _wait_gone(alive, grace)


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """The pids still running after *timeout* (a zombie has ended: it only awaits its reaper)."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if (facts := state_and_name(p)) is not None and facts[0] != "Z"]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.05)


def _send(sup: RunState, pids: list[int], sig: signal.Signals, reason: str) -> None:
    sent = []
    for pid in pids:
        try:
            os.kill(pid, sig)
            sent.append(pid)
        except OSError:
            continue
    sup.event("signal-sent", signal=sig.name, pids=sent, reason=reason)
