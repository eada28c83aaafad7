"""The dead of one log: each dead xdist worker (node down, a crashed item, a replaced worker)
or dead process, the test it was running, and the fault dump and native aborts that belong
to it (by worker, by test, else by order)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.findings import FaultRecord, NativeAbort
from forensics.analyze.logs.frames import (
    current_stack,
    function_of,
    node_id_from_frames,
    node_id_in_file,
)
from forensics.analyze.logs.native_aborts import NATIVE_WINDOW
from forensics.analyze.logs.scan import LogScan
from forensics.model import Evidence


@dataclass
class Crash:
    """One dead worker (xdist), or one dead process (serial run), as the log tells it."""

    worker: str | None
    test: str | None
    line: int
    evidence: list[Evidence] = field(default_factory=list)
    fault: FaultRecord | None = None
    natives: list[NativeAbort] = field(default_factory=list)
    hang: bool = False
    paired_by_order: bool = False  # the fault dump was matched by position only


def _fault_matches(fault: FaultRecord, crash: Crash) -> bool:
    if fault.worker and crash.worker:
        return fault.worker == crash.worker
    stack = current_stack(fault)
    if stack is not None and stack.frames and crash.test:
        # The dump's own frames beat a node id printed before it on the same line: under
        # xdist that node id is whatever test the controller announced last.
        func = function_of(crash.test)
        base = os.path.basename(crash.test.split("::", 1)[0])
        return any(f.name == func and os.path.basename(f.file or "") == base for f in stack.frames)
    return bool(fault.test and crash.test and fault.test == crash.test)


def collect_crashes(scan: LogScan) -> list[Crash]:
    """Every dead worker or process in the log, in log order, with its test and fault dump."""
    crashes: list[Crash] = []
    by_worker: dict[str, Crash] = {}
    for down in scan.node_downs:
        crash = Crash(down.worker, None, down.line, [ev(scan, down.line, down.excerpt)])
        if down.worker and down.worker not in by_worker:
            by_worker[down.worker] = crash
        crashes.append(crash)
    for item in scan.crashed_items:
        known = by_worker.get(item.worker)
        if known is None:
            known = Crash(item.worker, item.test, item.line)
            by_worker[item.worker] = known
            crashes.append(known)
        known.test = known.test or item.test
        known.evidence.append(ev(scan, item.line, item.excerpt))
    # "replacing crashed worker gwN" alone (the node-down line cut from an excerpt) is a death.
    # xdist reports the item the worker was running as FAILED on that worker just before it
    # replaces the worker (node down, the crash item's report, then "replacing").
    for event in scan.worker_events:
        if event.kind == "replaced" and event.worker and event.worker not in by_worker:
            crash = Crash(event.worker, None, event.line, [ev(scan, event.line, event.excerpt)])
            before = [
                p
                for p in scan.progress
                if p.worker == event.worker and 0 < event.line - p.line <= 10 and p.kind == "FAILED"
            ]
            if before:
                crash.test = before[-1].test
                crash.evidence.insert(
                    0, ev(scan, before[-1].line, f"[{event.worker}] FAILED {crash.test}")
                )
            by_worker[event.worker] = crash
            crashes.append(crash)
    # A session cut short (INTERNALERROR) never prints the crash report; xdist's result line
    # right after "node down" still names the test.
    for crash in crashes:
        if crash.test is None and crash.worker:
            for prog in scan.progress:
                if prog.worker == crash.worker and 0 <= prog.line - crash.line <= 10:
                    crash.test = prog.test
                    crash.evidence.append(
                        ev(scan, prog.line, f"[{prog.worker}] {prog.kind} {prog.test}")
                    )
                    break
    # Pair each fatal faulthandler block with its worker: by name, by test, else by order.
    fatal = [f for f in scan.faults if f.fatal is not None]
    unclaimed = list(fatal)
    for fault in fatal:
        for crash in crashes:
            if crash.fault is None and _fault_matches(fault, crash):
                crash.fault = fault
                unclaimed.remove(fault)
                break
    for fault in list(unclaimed):
        later = [c for c in crashes if c.fault is None and c.line >= fault.line and not c.test]
        later = later or [c for c in crashes if c.fault is None and c.line >= fault.line]
        if later:
            later[0].fault = fault
            unclaimed.remove(fault)
    # stderr printed after stdout (a log made of both files): the dumps come after every
    # report. Workers die in the order xdist reports them, so pair the rest in order.
    orphans = [c for c in crashes if c.fault is None and c.worker]
    if unclaimed and orphans and all(f.line > c.line for f in unclaimed for c in orphans):
        for fault, crash in zip(list(unclaimed), orphans, strict=False):
            crash.fault, crash.paired_by_order = fault, True
            unclaimed.remove(fault)
    for fault in unclaimed:  # a process outside xdist: the run itself, or a subprocess
        stack = current_stack(fault)
        frames = stack.frames if stack else []
        test = (
            fault.test
            or node_id_in_file(frames, fault.progress_file)
            or node_id_from_frames(frames, scan.rootdir)
            or fault.progress_file  # the file is known even when no test frame is in the dump
        )
        crashes.append(Crash(fault.worker, test, fault.line, fault=fault))
    crashes.sort(key=lambda c: c.line)
    return crashes


def attach_natives(scan: LogScan, crashes: list[Crash]) -> list[NativeAbort]:
    """Give each panic/terminate to the first crash at or after it; return the rest."""
    orphans = []
    for native in scan.native_aborts:
        target = None
        for crash in crashes:
            if native.worker and crash.worker and native.worker != crash.worker:
                continue
            start = crash.fault.line if crash.fault else crash.line
            # A panic far before a crash was caught (PanicException), not the cause.
            if native.line <= start <= native.line + NATIVE_WINDOW:
                target = crash
                break
        if target is None:
            orphans.append(native)
        else:
            target.natives.append(native)
    return orphans
