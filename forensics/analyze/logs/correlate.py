"""Turn one log's findings into incidents: pair crash evidence with workers and tests, and
rank consequences (xdist INTERNALERROR, BrokenProcessPool, a broken pipe) below
the crash that caused them.  A consequence is never primary while a cause is in sight.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from forensics.analyze import differential
from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.deaths import RUST_ABORTING as ABORTING
from forensics.analyze.logs.findings import FaultRecord, KillEvent, NativeAbort, PythonFailure
from forensics.analyze.logs.kernel import KernelFault, oom_summary
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.model import Evidence, Frame, Incident, Secondary, Stack
from forensics.rules import is_harness_path

PHASE_BY_HOOK = {
    "pytest_runtest_setup": "setup",
    "pytest_runtest_call": "call",
    "pytest_runtest_teardown": "teardown",
    "pytest_collect_file": "collect",
    "pytest_make_collect_report": "collect",
}
# What each runtime's last words are called in a summary (logs/deaths.py and scan.py find them).
NATIVE_LABEL = {
    "rust-panic": "Rust panic",
    "rust-fatal": "Rust fatal runtime error",
    "rust-abort": "Rust runtime abort",
    "cpp-terminate": "C++ terminate",
    "cxx-uncaught": "C++ uncaught exception (libc++abi)",
    "ns-exception": "uncaught Objective-C exception",
    "objc-fork": "objc fork-safety abort",
    "macos-crash-report": "macOS crash report",
}
MAX_TESTS_PER_GROUP = 20
HANG_SILENCE_S = 300.0
NATIVE_WINDOW = 300  # lines from a panic/terminate to the crash it explains


@dataclass
class _Crash:
    """One dead worker (xdist), or one dead process (serial run), as the log tells it."""

    worker: str | None
    test: str | None
    line: int
    evidence: list[Evidence] = field(default_factory=list)
    fault: FaultRecord | None = None
    natives: list[NativeAbort] = field(default_factory=list)
    hang: bool = False
    paired_by_order: bool = False  # the fault dump was matched by position only


def _ev(scan: LogScan, line: int, excerpt: str) -> Evidence:
    return Evidence(f"{scan.source}:{line}", excerpt)


def _func(test: str) -> str:
    return test.rsplit("::", 1)[-1].split("[", 1)[0]


def _current(fault: FaultRecord) -> Stack | None:
    for stack in fault.stacks:
        if stack.state == "current":
            return stack
    return fault.stacks[0] if fault.stacks else None


def _runner_frame(frame: Frame) -> bool:
    # The test machinery's frames, not the code that crashed: one set with bundles.
    return is_harness_path(frame.file)


def _test_from_frames(frames: list[Frame], rootdir: str | None) -> str | None:
    for frame in frames:  # innermost first, as faulthandler prints
        base = (frame.file or "").replace("\\", "/").rsplit("/", 1)[-1]
        if frame.name.startswith("test") and (
            base.startswith("test_") or base.endswith("_test.py")
        ):
            path = frame.file or base
            if rootdir and path.startswith(rootdir.rstrip("/") + "/"):
                path = path[len(rootdir.rstrip("/")) + 1 :]
            return f"{path}::{frame.name}"
    return None


def _test_in_file(frames: list[Frame], progress_file: str | None) -> str | None:
    """The test function among the frames of the file pytest's progress line named."""
    if not progress_file:
        return None
    base = progress_file.replace("\\", "/").rsplit("/", 1)[-1]
    for frame in frames:
        if (
            frame.name.startswith("test")
            and (frame.file or "").replace("\\", "/").rsplit("/", 1)[-1] == base
        ):
            return f"{progress_file}::{frame.name}"
    return None


def _frames_of(fault: FaultRecord) -> list[Frame]:
    stack = _current(fault)
    return stack.frames if stack else []


def _phase(frames: list[Frame]) -> str | None:
    for frame in frames:
        if frame.name in PHASE_BY_HOOK:
            return PHASE_BY_HOOK[frame.name]
    return None


def _library(frames: list[Frame]) -> str | None:
    """The package of the innermost non-runner frame under site-packages, if any."""
    for frame in frames:
        path = (frame.file or "").replace("\\", "/")
        for marker in ("/site-packages/", "/dist-packages/"):
            if marker in path and not _runner_frame(frame):
                return path.split(marker, 1)[1].split("/", 1)[0]
    return None


def _fault_matches(fault: FaultRecord, crash: _Crash) -> bool:
    if fault.worker and crash.worker:
        return fault.worker == crash.worker
    stack = _current(fault)
    if stack is not None and stack.frames and crash.test:
        # The dump's own frames beat a node id printed before it on the same line: under
        # xdist that node id is whatever test the controller announced last.
        func = _func(crash.test)
        base = os.path.basename(crash.test.split("::", 1)[0])
        return any(f.name == func and os.path.basename(f.file or "") == base for f in stack.frames)
    return bool(fault.test and crash.test and fault.test == crash.test)


def _collect_crashes(scan: LogScan) -> list[_Crash]:
    crashes: list[_Crash] = []
    by_worker: dict[str, _Crash] = {}
    for down in scan.node_downs:
        crash = _Crash(down.worker, None, down.line, [_ev(scan, down.line, down.excerpt)])
        if down.worker and down.worker not in by_worker:
            by_worker[down.worker] = crash
        crashes.append(crash)
    for item in scan.crashed_items:
        known = by_worker.get(item.worker)
        if known is None:
            known = _Crash(item.worker, item.test, item.line)
            by_worker[item.worker] = known
            crashes.append(known)
        known.test = known.test or item.test
        known.evidence.append(_ev(scan, item.line, item.excerpt))
    # "replacing crashed worker gwN" alone (the node-down line cut from an excerpt) is a death.
    # xdist reports the item the worker was running as FAILED on that worker just before it
    # replaces the worker (node down, the crash item's report, then "replacing").
    for event in scan.worker_events:
        if event.kind == "replaced" and event.worker and event.worker not in by_worker:
            crash = _Crash(event.worker, None, event.line, [_ev(scan, event.line, event.excerpt)])
            before = [
                p
                for p in scan.progress
                if p.worker == event.worker and 0 < event.line - p.line <= 10 and p.kind == "FAILED"
            ]
            if before:
                crash.test = before[-1].test
                crash.evidence.insert(
                    0, _ev(scan, before[-1].line, f"[{event.worker}] FAILED {crash.test}")
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
                        _ev(scan, prog.line, f"[{prog.worker}] {prog.kind} {prog.test}")
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
        stack = _current(fault)
        frames = stack.frames if stack else []
        test = (
            fault.test
            or _test_in_file(frames, fault.progress_file)
            or _test_from_frames(frames, scan.rootdir)
            or fault.progress_file  # the file is known even when no test frame is in the dump
        )
        crashes.append(_Crash(fault.worker, test, fault.line, fault=fault))
    crashes.sort(key=lambda c: c.line)
    return crashes


def _attach_natives(scan: LogScan, crashes: list[_Crash]) -> list[NativeAbort]:
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


def _hang_tests(scan: LogScan) -> dict[str, list[Stack]]:
    hung: dict[str, list[Stack]] = {}
    for dump in scan.timeouts:
        key = dump.test or "?"
        hung.setdefault(key, []).extend(dump.stacks)
    # Dumps named by section title ("test_hang") merge into the node id from the summary.
    for title in [k for k in hung if "::" not in k]:
        for full in [k for k in hung if "::" in k]:
            if full.split("::", 1)[1].replace("::", ".") == title or _func(full) == title:
                hung[full].extend(hung.pop(title))
                break
    return hung


def _hang_key(crash: _Crash, hung: dict[str, list[Stack]]) -> str | None:
    """The timeout dump that explains a dead worker: by test id, title, or a frame in it."""
    test = crash.test or ""
    func = _func(test)
    for key in (test, func):
        if key in hung:
            return key
    for key, stacks in hung.items():
        if "::" not in key and any(f.name == func for s in stacks for f in s.frames):
            return key
    return None


def _crash_incident(
    scan: LogScan,
    crash: _Crash,
    oom: list[KillEvent],
    sigkill: list[KillEvent],
    kernel: KernelFault | None = None,
) -> Incident:
    fault = crash.fault
    current = _current(fault) if fault else None
    # The crashing thread first: it is the one a reader needs.
    stacks = sorted(fault.stacks, key=lambda s: s is not current) if fault else []
    frames = current.frames if current else []
    where = f" {crash.worker}" if crash.worker else ""
    running = f" while running {crash.test}" if crash.test else ""
    library = _library(frames)
    evidence = list(crash.evidence)
    if kernel is not None:
        evidence.insert(0, _ev(scan, kernel.line, kernel.excerpt))
        library = library or kernel.blame
    if fault:
        evidence.insert(0, _ev(scan, fault.line, fault.excerpt))
        cause, signal = "native-crash", fault.signal
        confidence = "medium" if crash.paired_by_order else "high"
        said = (
            "Windows fatal exception" if "Windows fatal" in fault.excerpt else "Fatal Python error"
        )
        what = f"{fault.signal or 'fatal error'} ({said}: {fault.fatal})"
    elif kernel is not None:
        # The kernel's own line: the signal, and the library the faulting instruction was in.
        cause, confidence, signal = "native-crash", "medium", kernel.signal
        what = f"died of {kernel.signal} (kernel: {kernel.what})"
    elif oom:
        cause, confidence, signal = "oom-kill", "medium", "SIGKILL"
        what = "killed by the kernel OOM killer"
        evidence.extend(_ev(scan, k.line, k.excerpt) for k in oom[:3])
    elif sigkill and unannounced_kill(scan):
        cause, confidence, signal = "oom-kill", "low", "SIGKILL"
        what = UNANNOUNCED
        evidence.extend(_ev(scan, k.line, k.excerpt) for k in sigkill[:3])
    elif sigkill:
        cause, confidence, signal = "external-kill", "medium", "SIGKILL"
        what = "killed by SIGKILL (no OOM line in the log: a CI limit or another process)"
        evidence.extend(_ev(scan, k.line, k.excerpt) for k in sigkill[:3])
    else:
        cause, confidence, signal = "native-crash", "low", None
        what = "died without Python teardown (no fault dump in the log, signal unknown)"
    summary = f"Worker{where} {what}{running}" if crash.worker else f"Process {what}{running}"
    for native in crash.natives:
        evidence.append(_ev(scan, native.line, native.excerpt))
        library = native.library or library
        if native.kind in NATIVE_LABEL:
            signal = signal or native.signal or "SIGABRT"
            if cause != "native-crash" or confidence == "low":
                cause, confidence = "native-crash", "medium"
            label = NATIVE_LABEL[native.kind]
            if native.location:
                label += f" at {native.location}"
            summary += f" after {label}: {native.message}" if native.message else f" after {label}"
        if native.frames:
            stacks.append(
                Stack(
                    pid=None, thread=f"{native.kind} backtrace", frames=native.frames, method="log"
                )
            )
    sig_target = crash.test or (frames[0].name if frames else "unknown")
    incident = Incident(
        id="",
        cause=cause,
        confidence=confidence,
        summary=summary,
        worker=crash.worker,
        signal=signal,
        test=crash.test,
        phase=_phase(frames),
        native_library=library,
        evidence=evidence[:12],
        stacks=stacks,
    )
    blind = cause == "native-crash" and confidence == "low" and fault is None
    facts = _death_facts(scan, crash, incident, oom if cause == "oom-kill" else [], kernel)
    differential.apply(incident, facts, decide=blind)
    if blind:
        incident.summary = _blind_summary(scan, crash, incident, facts)
    if blind and incident.cause == "hang":
        incident.evidence[:0] = [
            _ev(scan, line, text) for line, text in scan.header.lines if text.startswith("timeout")
        ][:2]
    # No signal in the key: a log without the fault dump must group with one that has it.
    incident.signature = normalize(f"{incident.cause} {sig_target}")
    return incident


def _death_facts(
    scan: LogScan,
    crash: _Crash,
    incident: Incident,
    oom: list[KillEvent],
    kernel: KernelFault | None = None,
) -> differential.DeathFacts:
    """What the log tells about one dead worker, for the differential."""
    head = scan.header
    down = next((d for d in scan.node_downs if d.line == crash.line), None)
    native = next((n for n in crash.natives), None)
    facts = differential.DeathFacts(
        source="log",
        worker=crash.worker is not None,
        signal=incident.signal,
        fault_dump=crash.fault is not None,
        native_abort=f"{native.kind}: {native.message}"[:200] if native else None,
        oom=_oom_text(oom),
        kernel_fault=kernel.describe() if kernel else None,
        unannounced_kill=unannounced_kill(scan),
        timeout_s=head.timeout_s,
        timeout_method=head.timeout_method,
        timeout_plugin=("timeout" in head.plugins) if head.plugins_seen else None,
        silent_s=down.silent_s if down else None,
        silent_of=down.silent_of if down else None,
        since_begin_s=down.since_begin_s if down else None,
    )
    _timing_facts(scan, crash.test, facts, down.time if down else None)
    return facts


def _oom_text(oom: list[KillEvent]) -> str | None:
    """The OOM kill in words (victim, memory, limit), else the kernel's line itself."""
    if not oom:
        return None
    return oom_summary([k.excerpt for k in oom]) or oom[0].excerpt


def _timing_facts(
    scan: LogScan, test: str | None, facts: differential.DeathFacts, ended: float | None = None
) -> None:
    """How long *test* ran and the timeout it had, from the figures the log holds."""
    times = scan.times
    ran = times.ran(test, ended)
    if ran is not None:
        facts.ran_s, facts.ran_from, facts.ran_at_least = ran.secs, ran.source, ran.lower_bound
    own = times.limit_of(test)
    if own is not None:
        facts.timeout_s = own  # the test's own limit, a @pytest.mark.timeout marker included
    elif facts.timeout_s is None and times.limit is not None:
        facts.timeout_s = times.limit
        facts.timeout_from = f"a 'Timeout (>{times.limit:g}s)' failure in the log"
        facts.timeout_plugin = True


def _blind_summary(
    scan: LogScan, crash: _Crash, incident: Incident, facts: differential.DeathFacts
) -> str:
    """A worker gone without a dump: say what the differential makes of it."""
    who = f"Worker {crash.worker}" if crash.worker else "The process"
    running = f" while running {crash.test}" if crash.test else ""
    limit = f"{facts.timeout_s:g} s" if facts.timeout_s is not None else "its timeout"
    if incident.cause == "hang" and incident.confidence != "low":
        quiet = f" after {facts.silent_s:.1f} s of silence" if facts.silent_s is not None else ""
        return (
            f"{who} went down without a fault dump{quiet}{running}: pytest-timeout's thread "
            f"method ({limit}) ended it with os._exit(1)"
        )
    if incident.cause == "hang":
        return (
            f"{who} went down without a fault dump{running}: pytest-timeout's thread method "
            f"({limit}) ends a hung worker this way; a native crash is not excluded (nothing in"
            " the log dates the worker's silence)"
        )
    timer = next((h for h in incident.extra.get("differential", []) if h["cause"] == "hang"), None)
    if timer is not None and timer["verdict"] in ("possible", "most likely"):
        return (
            f"{who} died without Python teardown{running}: native crash or timeout exit"
            " (pytest-timeout, thread method), or a SIGKILL (the OOM killer) or os._exit() -"
            " cannot tell (no fault dump, signal unknown)"
        )
    return (
        f"{who} died without Python teardown (no fault dump in the log, signal unknown){running}:"
        " a native crash, a SIGKILL (the OOM killer) or os._exit() - the log cannot tell"
    )


def _all_frames(stacks: list[Stack]) -> list[Frame]:
    """Every frame of a dump: the test's own is the one named test* in a test file."""
    return [frame for stack in stacks for frame in stack.frames]


def _hang_incident(
    scan: LogScan,
    test: str,
    stacks: list[Stack],
    crash: _Crash | None,
    named: str | None = None,
) -> Incident:
    evidence = [
        _ev(scan, d.line, d.excerpt)
        for d in scan.timeouts
        if (d.test or "?") == test or (d.test and test.endswith(d.test))
    ][:6]
    if crash:
        evidence.extend(crash.evidence)
    name = named or (None if test == "?" else test)
    worker = (
        crash.worker
        if crash
        else next((d.worker for d in scan.timeouts if d.test == test and d.worker), None)
    )
    worker = worker or next((p.worker for p in scan.progress if p.test == test and p.worker), None)
    incident = Incident(
        id="",
        cause="hang",
        confidence="high" if stacks or evidence else "medium",
        summary=f"{name or 'A test'} exceeded its pytest-timeout limit"
        + (f" on {worker}" if worker else ""),
        worker=worker,
        test=name,
        phase="call",
        evidence=evidence,
        stacks=stacks,
        signature=normalize(f"hang {name or ''}"),
    )
    head = scan.header
    facts = differential.DeathFacts(
        source="log",
        worker=worker is not None,
        timeout_s=head.timeout_s,
        timeout_method=head.timeout_method,
        timer_dump=bool(stacks or evidence),
        silent_s=next(
            (
                d.silent_s
                for d in scan.timeouts
                if d.silent_s is not None and (d.test or "?") == test
            ),
            None,
        ),
        silent_of="log",
    )
    _timing_facts(scan, name, facts)
    differential.apply(incident, facts)
    return incident


def _failure_groups(scan: LogScan, failures: list[PythonFailure]) -> list[Incident]:
    groups: dict[tuple[str, str], Incident] = {}
    # xdist's "[gw3] [ 45%] FAILED test" lines say where each failure ran.
    ran_on = {p.test: p.worker for p in scan.progress if p.worker}
    for failure in failures:
        failure.worker = failure.worker or ran_on.get(failure.test or "")
        head = f"{failure.exc_type}: {failure.message}" if failure.exc_type else failure.message
        cause = "infrastructure" if P.INFRA.search(head) else "python-exception"
        if (failure.exc_type or "").endswith("PanicException"):
            # PyO3 turned a Rust panic into this exception: the panic's message is the bug.
            head += " (a Rust panic raised into Python by PyO3)"
        key = (cause, failure.signature)
        incident = groups.get(key)
        if incident is None:
            incident = Incident(
                id="",
                cause=cause,
                confidence="high" if failure.exc_type else "medium",
                summary=f"{failure.test or 'A test'} {failure.kind}: {head}"[:300],
                worker=failure.worker,
                test=failure.test,
                phase=failure.phase,
                signature=failure.signature,
                extra={"count": 0, "tests": []},
            )
            groups[key] = incident
        incident.extra["count"] += 1
        if failure.test and len(incident.extra["tests"]) < MAX_TESTS_PER_GROUP:
            incident.extra["tests"].append(failure.test)
        if len(incident.evidence) < 5:
            incident.evidence.append(_ev(scan, failure.line, failure.excerpt))
    for incident in groups.values():
        count = incident.extra["count"]
        if count > 1:
            incident.summary = f"{incident.summary} (and {count - 1} more with the same signature)"
    return list(groups.values())


def correlate(scan: LogScan) -> list[Incident]:
    """Incidents of one log, primary causes only; consequences go into ``secondary``."""
    crashes = _collect_crashes(scan)
    orphan_natives = _attach_natives(scan, crashes)
    hung = _hang_tests(scan)
    oom = [k for k in scan.kills if k.kind == "oom"]
    sigkill = [k for k in scan.kills if k.kind != "oom" and k.signal == "SIGKILL"]
    incidents: list[Incident] = []
    crash_incidents: list[tuple[int, Incident]] = []
    # The kernel's fault lines name no xdist worker: give them to the dead in order.  Only
    # the interpreter's own: another program's segfault on the machine (node, a database) says
    # nothing about the tests, and must not outrank the OOM kill that does.
    kernel = [k for k in scan.kernel_faults if k.of_tests]
    for crash in crashes:
        # pytest-timeout's thread method ends the worker with os._exit: a hang, not a crash.
        key = _hang_key(crash, hung) if crash.fault is None and crash.test else None
        if key is not None and crash.test:
            hang = _hang_incident(scan, crash.test, hung.pop(key), crash)
            crash_incidents.append((crash.line, hang))  # a worker it took down can trip xdist
            incidents.append(hang)
            continue
        incident = _crash_incident(scan, crash, oom, sigkill, kernel.pop(0) if kernel else None)
        crash_incidents.append((crash.line, incident))
        incidents.append(incident)
    for test, stacks in hung.items():
        # A serial thread-method dump names no test; its frames do.
        named = test if test != "?" else _test_from_frames(_all_frames(stacks), scan.rootdir)
        incidents.append(_hang_incident(scan, test, stacks, None, named))
    for fault in scan.faults:
        if fault.timeout is not None:
            incidents.append(
                Incident(
                    id="",
                    cause="hang",
                    confidence="medium",
                    summary=f"faulthandler timeout dump after {fault.timeout} (no progress)",
                    test=fault.test
                    or _test_from_frames(_frames_of(fault), scan.rootdir)
                    or fault.progress_file,  # the dots line the banner cut short
                    evidence=[_ev(scan, fault.line, fault.excerpt)],
                    stacks=fault.stacks,
                    signature=normalize(f"hang faulthandler {fault.test or ''}"),
                )
            )
    for line, incident in _native_incidents(scan, orphan_natives):
        crash_incidents.append((line, incident))
        incidents.append(incident)
    _kills(scan, incidents, crash_incidents, oom)
    # xdist giving up before its INTERNALERROR: that has a crash to be secondary to.
    _max_crashed(scan, incidents, crash_incidents)
    causes_seen = bool(incidents)
    _internal_errors(scan, incidents, crash_incidents)
    _failures(scan, incidents, crash_incidents, causes_seen, crashes)
    _leftovers(scan, incidents)
    for incident in incidents:
        if "differential" not in incident.extra:
            _weigh_rest(scan, incident, kernel)
    return incidents


def _one_death(group: list[NativeAbort], native: NativeAbort) -> bool:
    """A Rust panic and what follows it (the "cannot unwind" panic, the runtime's abort) are
    one death; so are a crash report and the exception it quotes."""
    last = group[-1]
    if native.line - last.line > NATIVE_WINDOW:
        return False
    rust = ("rust-panic", "rust-fatal", "rust-abort")
    return last.kind in rust and native.kind in rust


def _aborts(scan: LogScan, group: list[NativeAbort]) -> bool:
    """Whether the process died of it, not only printed it.

    A panic PyO3 catches becomes a PanicException in Python and the run goes on; a panic that
    cannot unwind, a second panic, Rust's own "fatal runtime error" or the shell's report of
    SIGABRT mean the process aborted.  Every other runtime here aborts by itself.
    """
    if any(n.kind != "rust-panic" or ABORTING.search(n.message) for n in group):
        return True
    # The shell's SIGABRT soon after the panic, with no test result between them: a result
    # means pytest went on after the panic, so the abort is some other process's.
    first, last = group[0].line, group[-1].line
    return any(
        k.signal == "SIGABRT"
        and first <= k.line <= last + NATIVE_WINDOW
        and not any(last < p.line < k.line for p in scan.progress)
        for k in scan.kills
    )


def _native_incidents(scan: LogScan, orphans: list[NativeAbort]) -> list[tuple[int, Incident]]:
    """Runtime deaths no dead worker or fault dump stands behind: a serial run, a subprocess."""
    groups: list[list[NativeAbort]] = []
    for native in orphans:
        if groups and _one_death(groups[-1], native):
            groups[-1].append(native)
        else:
            groups.append([native])
    found = []
    for group in groups:
        if not _aborts(scan, group):
            continue
        head = group[0]
        frames = next((n.frames for n in group if n.frames), [])
        label = NATIVE_LABEL.get(head.kind, head.kind)
        if head.location:
            label += f" at {head.location}"
        test = next((n.test for n in group if n.test), None)
        running = f" while running {test}" if test else ""
        signal = head.signal or "SIGABRT"
        message = f": {head.message}" if head.message else ""
        incident = Incident(
            id="",
            cause="native-crash",
            confidence="medium",
            signal=signal,
            summary=f"Process aborted ({signal}) after {label}{message}{running}"[:300],
            worker=head.worker,
            test=test,
            native_library=next((n.library for n in group if n.library), None),
            evidence=[_ev(scan, n.line, n.excerpt) for n in group[:6]],
            stacks=[Stack(pid=None, thread=f"{head.kind} backtrace", frames=frames, method="log")]
            if frames
            else [],
            signature=normalize(f"native-crash {signal} {head.kind} {head.message}"),
        )
        found.append((head.line, incident))
    return found


def _weigh_rest(scan: LogScan, incident: Incident, kernel: list[KernelFault]) -> None:
    """The differential of an incident no dead worker stands behind (a kill, a failure).

    A process that died of a crash signal takes the next kernel fault line nobody claimed.
    """
    if incident.cause not in differential.DEATH_CAUSES:
        differential.reported_failure(incident)
        return
    fault = kernel.pop(0) if kernel and incident.signal in differential.NATIVE_SIGNALS else None
    if fault is not None:
        incident.evidence.insert(0, _ev(scan, fault.line, fault.excerpt))
        incident.native_library = incident.native_library or fault.blame
    oom = [k for k in scan.kills if k.kind == "oom"]
    head = scan.header
    facts = differential.DeathFacts(
        source="log",
        worker=False,  # no "node down" stands behind it
        signal=incident.signal,
        exit_code=incident.exit_code,
        oom=_oom_text(oom) if incident.cause == "oom-kill" else None,
        kernel_fault=fault.describe() if fault else None,
        unannounced_kill=unannounced_kill(scan),
        timeout_s=head.timeout_s,
        timeout_method=head.timeout_method,
        timeout_plugin=("timeout" in head.plugins) if head.plugins_seen else None,
    )
    if incident.cause == "hang":
        facts.stalled = incident.summary
        facts.ended_by = "the CI job" if "CI job" in incident.summary else None
    differential.apply(incident, facts)


UNANNOUNCED = (
    "killed by SIGKILL with no cancel in the log (most often the kernel's OOM killer; "
    "no OOM line confirms it)"
)


def unannounced_kill(scan: LogScan) -> bool:
    """Whether a SIGKILL in the log came with nothing that announced it.

    A CI cancel or time limit prints its own line, a timeout tool shows on the killed command
    line, and a supervisor sends SIGTERM (or SIGINT) before it escalates; the kernel's OOM killer
    sends SIGKILL to a foreground job unannounced, and on Linux it is by far the most common
    sender of one.
    """
    for kill in scan.kills:
        if kill.kind == "canceled" or kill.signal in ("SIGTERM", "SIGINT"):
            return False
        if kill.signal == "SIGKILL" and P.TIMEOUT_TOOL.search(kill.excerpt):
            return False
    return any(k.signal == "SIGKILL" and k.kind != "oom" for k in scan.kills)


def _kills(
    scan: LogScan,
    incidents: list[Incident],
    crash_incidents: list[tuple[int, Incident]],
    oom: list[KillEvent],
) -> None:
    others = [k for k in scan.kills if k.kind != "oom"]
    if crash_incidents:
        first = crash_incidents[0][1]
        later: list[KillEvent] = []
        crashes = [inc for _line, inc in crash_incidents]
        for kill in others:
            target = next((inc for inc in crashes if _same_crash(scan, inc, kill)), None)
            if target is None and kill.kind == "shell-signal" and _crash_signal(kill):
                later.append(kill)  # another process's crash, after or apart from these
                continue
            target = target or first
            if len(target.evidence) < 12:
                target.evidence.append(_ev(scan, kill.line, kill.excerpt))
            _enrich(target, kill)
        others = later
    elif oom:
        kill = oom[0]
        who = f"{kill.process} (pid {kill.pid})" if kill.process else "a process"
        incident = Incident(
            id="",
            cause="oom-kill",
            confidence="high",
            signal="SIGKILL",
            pid=kill.pid,
            summary=f"The kernel OOM killer killed {who}",
            evidence=[_ev(scan, k.line, k.excerpt) for k in (oom + others)[:6]],
            signature=normalize(f"oom-kill {kill.process or ''}"),
        )
        crash_incidents.append((kill.line, incident))
        incidents.append(incident)
        return
    for kill in others:
        if kill.kind == "canceled":
            if incidents:
                continue
            silent = kill.silence_s is not None and kill.silence_s >= HANG_SILENCE_S
            out_of_time = bool(P.CI_TIMEOUT.search(kill.excerpt))
            lost = any(k.kind == "canceled" and P.RUNNER_LOST.search(k.excerpt) for k in others)
            cause = "hang" if silent or out_of_time else "oom-kill" if lost else "external-kill"
            last = [p for p in scan.progress if p.line < kill.line][-1:]
            if silent and kill.silence_s is not None:
                summary = (
                    f"No output for {kill.silence_s / 60:.0f} min, then the CI job was cancelled"
                )
            elif out_of_time:
                summary = "The CI job ran out of time (the test run did not finish)"
            elif lost:
                summary = "The CI runner was lost (starved of memory, most often, or of CPU)"
            else:
                summary = "The CI job was cancelled"
            if last:
                summary += f"; the last result was {last[0].kind} {last[0].test}"
            incident = Incident(
                id="",
                cause=cause,
                confidence="medium" if cause == "hang" else "low",
                summary=summary,
                worker=last[0].worker if last else None,
                test=last[0].test if last else None,
                evidence=[_ev(scan, p.line, f"{p.kind} {p.test}") for p in last]
                + [_ev(scan, kill.line, kill.excerpt)],
                signature=normalize(f"{cause} ci-cancel"),
            )
        elif kill.signal in ("SIGKILL", "SIGTERM"):
            same = next((i for i in incidents if i.cause in ("external-kill", "oom-kill")), None)
            if same is not None:  # the shell's "Killed" and the runner's "exit code 137"
                _enrich(same, kill, scan)
                continue
            running = f" while running {kill.test}" if kill.test else ""
            if kill.signal == "SIGKILL" and unannounced_kill(scan):
                cause, confidence = "oom-kill", "low"
                summary = f"The run was {UNANNOUNCED}"
            else:
                cause, confidence = "external-kill", "medium"
                summary = f"The run was killed by {kill.signal} with no OOM evidence in the log"
            incident = Incident(
                id="",
                cause=cause,
                confidence=confidence,
                signal=kill.signal,
                exit_code=kill.exit_code,
                summary=summary + running,
                test=kill.test,
                evidence=[_ev(scan, kill.line, kill.excerpt)],
                signature=normalize(f"{cause} {kill.signal}"),
            )
        elif kill.signal:
            same = next((i for i in incidents if _same_crash(scan, i, kill)), None)
            if same is not None:  # "Aborted (core dumped)" and "exit code 134": one death
                _enrich(same, kill, scan)
                continue
            running = f" while running {kill.test}" if kill.test else ""
            what = kill.signal
            if kill.what and kill.exit_code is None:
                what = f"{kill.signal} ({kill.what})"  # cargo's "(signal: 11, SIGSEGV)"
            elif kill.what:
                what = f"{kill.what} (exit code {kill.exit_code}; {kill.signal} on POSIX)"
            incident = Incident(
                id="",
                cause="native-crash",
                confidence="medium",
                signal=kill.signal,
                exit_code=kill.exit_code,
                summary=f"The process died of {what} (no fault dump in the log){running}",
                test=kill.test,
                evidence=[_ev(scan, kill.line, kill.excerpt)],
                signature=normalize(f"native-crash {kill.signal}"),
            )
        else:
            continue
        crash_incidents.append((kill.line, incident))
        incidents.append(incident)


def _same_crash(scan: LogScan, incident: Incident, kill: KillEvent) -> bool:
    """Whether *kill* reports the death *incident* stands for, not a later one.

    The shell's "Aborted (core dumped)" after a fault dump, and the runner's "exit code 134",
    are the same death; a second session's crash is its own (a different signal, another test,
    or far from the first death's evidence).
    """
    if incident.cause != "native-crash":
        return False
    if kill.signal and incident.signal and kill.signal != incident.signal:
        return False
    if kill.test and incident.test and not _same_test(kill.test, incident.test):
        return False
    if kill.kind == "exit-code":
        return True  # the run's own exit status, printed once the job step ended
    # Either order: a build tool's "Exit code 0xc0000374" may come before the dump it ends.
    lines = [_line(e.source) for e in incident.evidence]
    return any(abs(kill.line - line) <= NATIVE_WINDOW for line in lines if line is not None)


def _crash_signal(kill: KillEvent) -> bool:
    return kill.signal is not None and kill.signal not in ("SIGKILL", "SIGTERM", "SIGINT")


def _same_test(one: str, other: str) -> bool:
    """One test named twice, perhaps once with a rootdir prefix or as its file only."""
    a, b = one.replace("\\", "/"), other.replace("\\", "/")
    if "::" in a and "::" in b:
        (fa, ta), (fb, tb) = a.split("::", 1), b.split("::", 1)
        return ta == tb and (fa.endswith("/" + fb) or fb.endswith("/" + fa) or fa == fb)
    fa, fb = a.split("::", 1)[0], b.split("::", 1)[0]
    return fa == fb or fa.endswith("/" + fb) or fb.endswith("/" + fa)


def _line(source: str) -> int | None:
    """The line number of an evidence's ``path:LINE``."""
    number = source.rsplit(":", 1)[-1]
    return int(number) if number.isdigit() else None


def _max_crashed(
    scan: LogScan, incidents: list[Incident], crash_incidents: list[tuple[int, Incident]]
) -> None:
    """xdist's "maximum crashed workers reached": always the crashes' consequence, never a cause."""
    for event in scan.worker_events:
        if event.kind != "max-crashed":
            continue
        summary = f"xdist stopped the session: {event.excerpt}"[:300]
        if crash_incidents:
            before = [inc for line, inc in crash_incidents if line <= event.line]
            target = before[-1] if before else crash_incidents[0][1]
            if not any(s.summary == summary for s in target.secondary):
                target.secondary.append(Secondary("xdist-internal", summary))
            continue
        # The crashes themselves were cut from the excerpt; that workers died is certain.
        incident = Incident(
            id="",
            cause="native-crash",
            confidence="low",
            summary="xdist workers kept dying until xdist gave up (maximum crashed workers"
            " reached); the log does not show why they died",
            evidence=[_ev(scan, event.line, event.excerpt)],
            secondary=[Secondary("xdist-internal", summary)],
            signature=normalize("native-crash xdist max-crashed"),
        )
        crash_incidents.append((event.line, incident))
        incidents.append(incident)


def _enrich(incident: Incident, kill: KillEvent, scan: LogScan | None = None) -> None:
    """Another report of the same death: its exit code, the test it names, its line."""
    if scan is not None and len(incident.evidence) < 12:
        incident.evidence.append(_ev(scan, kill.line, kill.excerpt))
    if incident.exit_code is None and kill.exit_code is not None:
        incident.exit_code = kill.exit_code
    if incident.test is None and kill.test:
        incident.test = kill.test
        incident.summary = f"{incident.summary} while running {kill.test}"[:300]


def _internal_errors(
    scan: LogScan, incidents: list[Incident], crash_incidents: list[tuple[int, Incident]]
) -> None:
    gave_up = [e.line for e in scan.worker_events if e.kind == "max-crashed"]
    for err in scan.internal_errors:
        # The INTERNALERROR xdist raises once it gave up on crashed workers is its own.
        err.in_xdist = err.in_xdist or any(line <= err.line for line in gave_up)
        module = ""
        if err.where:
            path, func = err.where.rsplit(":", 1)
            module = f" in {os.path.splitext(os.path.basename(path))[0]} {func}"
        head = f"{err.exc_type}: {err.message}" if err.exc_type else err.message
        summary = f"INTERNALERROR {head}{module}"[:300]
        if P.INFRA.search(head) and not err.in_xdist:
            # A conftest or plugin that needs the network failed the session: the network's
            # fault, whatever pytest calls it.
            incidents.append(
                Incident(
                    id="",
                    cause="infrastructure",
                    confidence="medium",
                    summary=summary,
                    evidence=[_ev(scan, err.line, err.excerpt)],
                    signature=normalize(f"infrastructure {head}"),
                )
            )
            continue
        if crash_incidents:
            before = [inc for line, inc in crash_incidents if line <= err.line]
            target = before[-1] if before else crash_incidents[0][1]
            if not any(s.summary == summary for s in target.secondary):
                target.secondary.append(
                    Secondary(
                        "xdist-internal" if err.in_xdist else "python-exception", summary, err.ref
                    )
                )
            continue
        incidents.append(
            Incident(
                id="",
                cause="xdist-internal" if err.in_xdist else "python-exception",
                confidence="high" if err.ref else "medium",
                summary=f"{summary} (known bug {err.ref})" if err.ref else summary,
                evidence=[_ev(scan, err.line, err.excerpt)],
                secondary=[],
                signature=normalize(f"INTERNALERROR {head}"),
                extra={"ref": err.ref} if err.ref else {},
            )
        )


def _failures(
    scan: LogScan,
    incidents: list[Incident],
    crash_incidents: list[tuple[int, Incident]],
    causes_seen: bool,
    crashes: list[_Crash],
) -> None:
    crashed = {c.test for c in crashes if c.test}
    hung = {i.test for i in incidents if i.cause == "hang" and i.test}
    kept: list[PythonFailure] = []
    for failure in scan.failures:
        if "crashed while running" in failure.message or failure.test in crashed:
            continue
        timed_out = failure.exc_type == "Failed" and P.TIMEOUT_FAILED.search(
            f"Failed: {failure.message}"
        )
        if timed_out and (
            failure.test in hung or any(h.endswith(failure.test or "\0") for h in hung)
        ):
            continue
        head = f"{failure.exc_type}: {failure.message}"
        if crash_incidents and P.CONSEQUENCE.search(head):
            target = crash_incidents[0][1]
            summary = f"{failure.test or 'A test'} {failure.kind}: {head}"[:300]
            if len(target.secondary) < 10 and not any(
                s.summary == summary for s in target.secondary
            ):
                target.secondary.append(Secondary("python-exception", summary))
            continue
        kept.append(failure)
    incidents.extend(_failure_groups(scan, kept))
    if not kept and not causes_seen and not scan.failures:
        for tb in scan.tracebacks[-1:]:
            if tb.exc_type is None and scan.infra:
                continue  # a paste cut before its last line: the infrastructure lines decide
            head = f"{tb.exc_type}: {tb.message}" if tb.exc_type else tb.message
            cause = "infrastructure" if P.INFRA.search(head) else "python-exception"
            incidents.append(
                Incident(
                    id="",
                    cause=cause,
                    confidence="medium",
                    summary=f"Uncaught {head}"[:300],
                    evidence=[_ev(scan, tb.line, tb.excerpt)],
                    stacks=[
                        Stack(
                            pid=None,
                            thread="traceback",
                            frames=list(reversed(tb.frames)),
                            method="log",
                        )
                    ],
                    signature=tb.signature or normalize(head),
                )
            )


def _leftovers(scan: LogScan, incidents: list[Incident]) -> None:
    """Infrastructure lines or a bad exit status that nothing else explains."""
    if incidents:
        return
    failed = scan.summary is not None and (scan.summary.counts.failed or scan.summary.counts.error)
    bad_exit = scan.exit_code not in (None, 0)
    if scan.infra and (failed or bad_exit or not scan.summary):
        first = scan.infra[0]
        hosts = sorted({i.host for i in scan.infra if i.host})
        where = f" ({', '.join(hosts[:3])})" if hosts else ""
        incidents.append(
            Incident(
                id="",
                cause="infrastructure",
                confidence="medium" if (failed or bad_exit) else "low",
                summary=f"Network/registry failure{where}: {first.text}"[:300],
                evidence=[_ev(scan, i.line, i.text) for i in scan.infra[:5]],
                signature=normalize(f"infrastructure {first.text}"),
            )
        )
    elif failed or bad_exit:
        what = f"exit code {scan.exit_code}" if bad_exit else "failed tests in the summary"
        incidents.append(
            Incident(
                id="",
                cause="unknown",
                confidence="low",
                summary=f"The run failed ({what}) but the log shows no crash, failure detail"
                " or kill; run pytest with -rA and faulthandler enabled, or under `forensics wrap`",
                exit_code=scan.exit_code,
                signature=normalize(f"unknown {what}"),
            )
        )
