"""Read a bundle into per-process records: the facts the classifier works from.

Tolerant by design: a bundle may be cut short (supervisor SIGKILLed), hand-edited or hostile.
Unknown records are ignored, fields are type-checked before use, and nothing is evaluated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.bundle import (
    EVENTS,
    FAULTS_DIR,
    OUTPUT,
    SYSTEM_DIR,
    WORKERS_DIR,
    check_bundle,
    is_real_dir,
    is_regular_file,
    open_bundle_file,
    read_bundle_bytes,
    read_jsonl,
    read_manifest,
    running_phase,
)
from forensics.faultparse import FaultBlock, parse_fault_text

MAX_FAULT_BYTES = 4 * 1024 * 1024
MAX_SYSTEM_JSON = 16 * 1024 * 1024
MAX_SYSTEM_LOG = 1_000_000


@dataclass
class TestRun:
    nodeid: str
    start: float
    end: float | None = None
    rss_start: int | None = None
    rss_end: int | None = None
    # phase -> outcome, from the process's own reports, and when each phase ended.
    phases: dict[str, str] = field(default_factory=dict)
    phase_ends: dict[str, float] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    location: tuple[str, int] | None = None
    # Fatal errors that processes the test started printed to the stderr pytest captured.
    captured_faults: list[str] = field(default_factory=list)
    # pytest-timeout's timer for this test, when one was armed.
    timeout: float | None = None
    timeout_method: str | None = None

    @property
    def open_phase(self) -> str | None:
        """The phase the test was in when its process stopped writing; None once it ended."""
        return None if self.end is not None else running_phase(self.phases)

    def phase_at(self, when: float | None) -> str | None:
        """The phase the test was in at *when* (the phases that had ended by then decide)."""
        if when is None:
            return self.open_phase or ("call" if "call" in self.phases else None)
        if when < self.start or (self.end is not None and when > self.end):
            return None
        ended = {p: o for p, o in self.phases.items() if self.phase_ends.get(p, 0.0) <= when}
        return running_phase(ended)

    @property
    def failed(self) -> bool:
        return "failed" in self.phases.values()

    def first_failure_at(self) -> float | None:
        times = [self.phase_ends[p] for p, o in self.phases.items() if o == "failed"]
        return min(times) if times else None


@dataclass
class ProcessRecord:
    pid: int
    ppid: int | None = None
    argv: list[str] = field(default_factory=list)
    executable: str | None = None
    cwd: str | None = None
    start: float | None = None
    end: float | None = None
    role: str | None = None  # "controller" | "worker" | "single" | None for non-pytest
    worker: str | None = None
    rootdir: str | None = None
    pytest_args: list[str] | None = None
    xdist: bool = False
    parent_test: str | None = None
    parent_worker: str | None = None
    tests: list[TestRun] = field(default_factory=list)
    open_collect: str | None = None
    clean_exit: bool = False
    session_finished: bool = False
    # When pytest began to shut down (session-finish or INTERNALERROR), for the controller.
    shutdown_at: float | None = None
    exit_code: int | None = None
    signal: str | None = None
    exit_source: str | None = None
    faults: list[FaultBlock] = field(default_factory=list)
    fault_path: str | None = None
    survivor: bool = False
    has_agent: bool = False
    # "exec" or "fork", from the agent's start record.
    how: str | None = None
    # (nodeid, error text, time) of collectors that failed, and pytest's own exit status.
    collect_errors: list[tuple[str, str, float]] = field(default_factory=list)
    session_exitstatus: int | None = None

    @property
    def open_test(self) -> TestRun | None:
        if self.tests and self.tests[-1].end is None:
            return self.tests[-1]
        return None

    @property
    def died_by_signal(self) -> bool:
        return self.signal is not None


@dataclass(frozen=True)
class SentSignal:
    """A signal the supervisor itself sent (escalation, Ctrl-C forwarding, clean-up)."""

    signal: str
    pids: tuple[int, ...]
    pgid: int | None
    t: float | None
    reason: str | None


@dataclass
class BundleData:
    path: Path
    manifest: dict[str, Any]
    events: list[dict[str, Any]]
    processes: dict[int, ProcessRecord]
    controller_records: list[dict[str, Any]]
    output_path: Path | None
    notes: list[str]
    system: dict[str, Any] = field(default_factory=dict)
    sent_signals: list[SentSignal] = field(default_factory=list)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _strs(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def load_bundle(path: Path) -> BundleData:
    check_bundle(path)
    manifest = read_manifest(path)
    events = list(read_jsonl(path / EVENTS))
    processes: dict[int, ProcessRecord] = {}
    notes: list[str] = []
    if os.path.lexists(path / EVENTS) and not is_regular_file(path / EVENTS):
        notes.append(f"{EVENTS} is a symlink or not a regular file: not read")

    def proc(pid: int) -> ProcessRecord:
        if pid not in processes:
            processes[pid] = ProcessRecord(pid=pid)
        return processes[pid]

    for ev in events:
        pid = _int(ev.get("pid"))
        kind = ev.get("kind")
        if kind == "proc-start" and pid is not None:
            rec = proc(pid)
            rec.ppid = rec.ppid or _int(ev.get("ppid"))
            rec.argv = rec.argv or _strs(ev.get("argv"))
            # "at": the kernel's time of the fork; "t": when the supervisor wrote it down.
            rec.start = rec.start or _float(ev.get("at")) or _float(ev.get("t"))
        elif kind == "proc-exec" and pid is not None:
            proc(pid).argv = _strs(ev.get("argv"))
        elif kind == "proc-exit" and pid is not None:
            rec = proc(pid)
            # The connector and our own reaping both see our direct child; either will do.
            if rec.exit_source is None or ev.get("source") == "connector":
                rec.exit_code = _int(ev.get("exit_code"))
                rec.signal = _str(ev.get("signal"))
                rec.exit_source = _str(ev.get("source")) or "supervisor"
            rec.end = _float(ev.get("at")) or _float(ev.get("t"))
        elif kind == "survivor" and pid is not None:
            proc(pid).survivor = True
        elif kind == "collector" and ev.get("ok") is False:
            notes.append(f"{ev.get('name')}: {ev.get('reason')}")

    controller_records: list[dict[str, Any]] = []
    workers_dir = path / WORKERS_DIR
    journal_files = sorted(workers_dir.glob("*.jsonl")) if is_real_dir(workers_dir) else []
    for journal in journal_files:
        stem_pid = int(journal.stem) if journal.stem.isdecimal() else None
        for rec_raw in read_jsonl(journal):
            pid = _int(rec_raw.get("pid")) or stem_pid
            if pid is None:
                continue
            _apply_breadcrumb(proc(pid), rec_raw, controller_records)

    faults_dir = path / FAULTS_DIR
    if is_real_dir(faults_dir):
        for fault in sorted(faults_dir.glob("*.log")):
            if not fault.stem.isdecimal():
                continue
            try:
                text = read_bundle_bytes(fault, MAX_FAULT_BYTES).decode("utf-8", "replace")
            except OSError:
                continue
            if not text.strip():
                continue
            rec = proc(int(fault.stem))
            rec.faults = parse_fault_text(text, pid=rec.pid)
            rec.fault_path = f"{FAULTS_DIR}/{fault.name}"

    # The xdist controller's view of its workers: their pids and how they went down.
    for rec_raw in controller_records:
        wpid = _int(rec_raw.get("worker_pid"))
        worker = _str(rec_raw.get("worker"))
        if wpid is None:
            continue
        rec = proc(wpid)
        rec.worker = rec.worker or worker
        if rec_raw.get("kind") == "node-down":
            code = _int(rec_raw.get("returncode"))
            if code is not None and rec.exit_source is None:
                rec.exit_code = code if code >= 0 else None
                rec.signal = _signal_name(-code) if code < 0 else None
                rec.exit_source = "xdist"

    output = path / OUTPUT
    system = _load_system(path / SYSTEM_DIR)
    return BundleData(
        path=path,
        manifest=manifest,
        events=events,
        processes=processes,
        controller_records=controller_records,
        output_path=output if is_regular_file(output) else None,
        notes=notes,
        system=system,
        sent_signals=[
            SentSignal(
                ev["signal"],
                tuple(p for p in ev.get("pids") or [] if _int(p) is not None),
                _int(ev.get("pgid")),
                _float(ev.get("t")),
                _str(ev.get("reason")),
            )
            for ev in events
            if ev.get("kind") == "signal-sent" and isinstance(ev.get("signal"), str)
        ],
    )


def _signal_name(number: int) -> str:
    import signal

    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


_CONTROLLER_KINDS = {"node-ready", "node-down", "crash-item", "internalerror", "report"}


def _apply_breadcrumb(
    rec: ProcessRecord, raw: dict[str, Any], controller_records: list[dict[str, Any]]
) -> None:
    kind = raw.get("kind")
    t = _float(raw.get("t")) or 0.0
    rec.has_agent = True
    if kind == "process-start":
        rec.ppid = rec.ppid or _int(raw.get("ppid"))
        # The kernel's command line (from the supervisor) names the interpreter; sys.argv
        # does not, and a repro built from it would not run.
        rec.argv = rec.argv or _strs(raw.get("argv"))
        rec.executable = _str(raw.get("executable"))
        rec.cwd = _str(raw.get("cwd"))
        rec.start = rec.start or t
        rec.parent_test = _str(raw.get("parent_test"))
        rec.parent_worker = _str(raw.get("parent_worker"))
        rec.how = _str(raw.get("how"))
    elif kind == "session-start":
        rec.role = _str(raw.get("role"))
        rec.worker = _str(raw.get("worker")) or rec.worker
        rec.rootdir = _str(raw.get("rootdir"))
        rec.pytest_args = _strs(raw.get("args"))
        rec.xdist = rec.role in ("controller", "worker")
    elif kind == "test-start":
        nodeid = _str(raw.get("nodeid"))
        if nodeid:
            rec.tests.append(TestRun(nodeid=nodeid, start=t, rss_start=_int(raw.get("rss"))))
    elif kind == "phase-end":
        test = rec.tests[-1] if rec.tests else None
        if test is not None and test.nodeid == raw.get("nodeid"):
            phase, outcome = _str(raw.get("phase")), _str(raw.get("outcome"))
            if phase and outcome:
                test.phases[phase] = outcome
                test.phase_ends[phase] = t
            if phase == "teardown":
                # The teardown's record ends the test (bundles before it had a test-end too).
                test.end = t
                test.rss_end = _int(raw.get("rss"))
            message = _str(raw.get("message"))
            if message:
                test.messages.append(message)
            loc = raw.get("location")
            if isinstance(loc, list) and len(loc) == 2 and isinstance(loc[0], str):
                line = _int(loc[1])
                if line is not None:
                    test.location = (loc[0], line)
    elif kind == "captured-fault":
        test = rec.tests[-1] if rec.tests else None
        text = _str(raw.get("text"))
        if test is not None and test.nodeid == raw.get("nodeid") and text:
            test.captured_faults.append(text)
    elif kind == "test-end":
        test = rec.tests[-1] if rec.tests else None
        if test is not None and test.nodeid == raw.get("nodeid"):
            test.end = t
            test.rss_end = _int(raw.get("rss")) or test.rss_end
    elif kind == "timeout-armed":
        test = rec.open_test
        if test is not None and test.nodeid == raw.get("nodeid"):
            test.timeout = _float(raw.get("timeout"))
            test.timeout_method = _str(raw.get("method"))
    elif kind == "collect-start":
        rec.open_collect = _str(raw.get("nodeid"))
    elif kind == "collect-end":
        if rec.open_collect == raw.get("nodeid"):
            rec.open_collect = None
        nodeid = _str(raw.get("nodeid"))
        if raw.get("outcome") == "failed" and nodeid is not None:
            rec.collect_errors.append((nodeid, _str(raw.get("longrepr")) or "", t))
    elif kind == "process-exit-clean":
        rec.clean_exit = True
        rec.end = rec.end or t
    elif kind == "session-finish":
        rec.session_finished = True
        rec.session_exitstatus = _int(raw.get("exitstatus"))
        rec.shutdown_at = min(t, rec.shutdown_at or t)
    elif kind == "internalerror":
        rec.shutdown_at = min(t, rec.shutdown_at or t)
    if kind in _CONTROLLER_KINDS:
        controller_records.append(raw)


def _load_system(system_dir: Path) -> dict[str, Any]:
    """Host evidence collectors left in ``system/``: JSON files by stem, kernel log lines."""
    import json

    found: dict[str, Any] = {}
    if not is_real_dir(system_dir):
        return found
    for entry in sorted(system_dir.iterdir()):
        if not is_regular_file(entry):
            continue
        try:
            if entry.suffix == ".json":
                raw = read_bundle_bytes(entry, MAX_SYSTEM_JSON)
                found[entry.stem] = json.loads(raw.decode("utf-8", "replace"))
            elif entry.suffix == ".jsonl":
                found[entry.stem] = list(read_jsonl(entry))
            elif entry.suffix in (".log", ".txt"):
                with open_bundle_file(entry) as fh:
                    fh.seek(max(0, os.fstat(fh.fileno()).st_size - MAX_SYSTEM_LOG))
                    found[entry.stem] = fh.read(MAX_SYSTEM_LOG).decode("utf-8", "replace")
        except (OSError, ValueError):
            continue
    return found
