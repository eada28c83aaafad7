"""One dead worker or process into an incident: its cause from the fault dump, the kernel's
fault line, an OOM kill or a SIGKILL, the runtime's last words before it; then the
differential over its death facts, which decides a death the log shows no cause for."""

from __future__ import annotations

from forensics.analyze import differential
from forensics.analyze.logs.crashes import Crash
from forensics.analyze.logs.death_facts import death_facts
from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.findings import KillEvent
from forensics.analyze.logs.frames import current_stack, library_of, phase_of
from forensics.analyze.logs.kernel import KernelFault
from forensics.analyze.logs.kills import UNANNOUNCED, unannounced_kill
from forensics.analyze.logs.native_aborts import NATIVE_LABEL
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.model import Incident, Stack


def crash_incident(
    scan: LogScan,
    crash: Crash,
    oom: list[KillEvent],
    sigkill: list[KillEvent],
    kernel: KernelFault | None = None,
) -> Incident:
    """The incident of one dead worker or process, weighed by the differential."""
    fault = crash.fault
    current = current_stack(fault) if fault else None
    # The crashing thread first: it is the one a reader needs.
    stacks = sorted(fault.stacks, key=lambda s: s is not current) if fault else []
    frames = current.frames if current else []
    where = f" {crash.worker}" if crash.worker else ""
    running = f" while running {crash.test}" if crash.test else ""
    library = library_of(frames)
    evidence = list(crash.evidence)
    if kernel is not None:
        evidence.insert(0, ev(scan, kernel.line, kernel.excerpt))
        library = library or kernel.blame
    if fault:
        evidence.insert(0, ev(scan, fault.line, fault.excerpt))
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
        evidence.extend(ev(scan, k.line, k.excerpt) for k in oom[:3])
    elif sigkill and unannounced_kill(scan):
        cause, confidence, signal = "oom-kill", "low", "SIGKILL"
        what = UNANNOUNCED
        evidence.extend(ev(scan, k.line, k.excerpt) for k in sigkill[:3])
    elif sigkill:
        cause, confidence, signal = "external-kill", "medium", "SIGKILL"
        what = "killed by SIGKILL (no OOM line in the log: a CI limit or another process)"
        evidence.extend(ev(scan, k.line, k.excerpt) for k in sigkill[:3])
    else:
        cause, confidence, signal = "native-crash", "low", None
        what = "died without Python teardown (no fault dump in the log, signal unknown)"
    summary = f"Worker{where} {what}{running}" if crash.worker else f"Process {what}{running}"
    for native in crash.natives:
        evidence.append(ev(scan, native.line, native.excerpt))
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
        phase=phase_of(frames),
        native_library=library,
        evidence=evidence[:12],
        stacks=stacks,
    )
    blind = cause == "native-crash" and confidence == "low" and fault is None
    facts = death_facts(scan, crash, incident, oom if cause == "oom-kill" else [], kernel)
    differential.apply(incident, facts)
    if blind:
        incident.summary = _blind_summary(scan, crash, incident, facts)
    if blind and incident.cause == "hang":
        incident.evidence[:0] = [
            ev(scan, line, text) for line, text in scan.header.lines if text.startswith("timeout")
        ][:2]
    # No signal in the key: a log without the fault dump must group with one that has it.
    incident.signature = normalize(f"{incident.cause} {sig_target}")
    return incident


def _blind_summary(
    scan: LogScan, crash: Crash, incident: Incident, facts: differential.DeathFacts
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
