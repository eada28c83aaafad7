"""Kills and deaths reported outside a fault dump: the OOM killer, SIGKILL/SIGTERM, a shell's
or CI runner's signal and exit code, a cancelled CI job.  Reports of a death already in
sight enrich its incident; the rest become incidents.  xdist's "maximum crashed workers
reached" is the crashes' consequence, never a cause."""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.evidence import ev, line_of
from forensics.analyze.logs.findings import KillEvent
from forensics.analyze.logs.native_aborts import NATIVE_WINDOW
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.testids import same_test
from forensics.model import Incident, Secondary

HANG_SILENCE_S = 300.0
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


def kill_incidents(
    scan: LogScan,
    incidents: list[Incident],
    crash_incidents: list[tuple[int, Incident]],
    oom: list[KillEvent],
) -> None:
    """Kill reports: onto the crash they report, else an OOM kill, a cancel, a kill or a
    crash signal of their own."""
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
                target.evidence.append(ev(scan, kill.line, kill.excerpt))
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
            evidence=[ev(scan, k.line, k.excerpt) for k in (oom + others)[:6]],
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
                evidence=[ev(scan, p.line, f"{p.kind} {p.test}") for p in last]
                + [ev(scan, kill.line, kill.excerpt)],
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
                evidence=[ev(scan, kill.line, kill.excerpt)],
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
                evidence=[ev(scan, kill.line, kill.excerpt)],
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
    if kill.test and incident.test and not same_test(kill.test, incident.test):
        return False
    if kill.kind == "exit-code":
        return True  # the run's own exit status, printed once the job step ended
    # Either order: a build tool's "Exit code 0xc0000374" may come before the dump it ends.
    lines = [line_of(e.source) for e in incident.evidence]
    return any(abs(kill.line - line) <= NATIVE_WINDOW for line in lines if line is not None)


def _crash_signal(kill: KillEvent) -> bool:
    return kill.signal is not None and kill.signal not in ("SIGKILL", "SIGTERM", "SIGINT")


def max_crashed(
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
            evidence=[ev(scan, event.line, event.excerpt)],
            secondary=[Secondary("xdist-internal", summary)],
            signature=normalize("native-crash xdist max-crashed"),
        )
        crash_incidents.append((event.line, incident))
        incidents.append(incident)


def _enrich(incident: Incident, kill: KillEvent, scan: LogScan | None = None) -> None:
    """Another report of the same death: its exit code, the test it names, its line."""
    if scan is not None and len(incident.evidence) < 12:
        incident.evidence.append(ev(scan, kill.line, kill.excerpt))
    if incident.exit_code is None and kill.exit_code is not None:
        incident.exit_code = kill.exit_code
    if incident.test is None and kill.test:
        incident.test = kill.test
        incident.summary = f"{incident.summary} while running {kill.test}"[:300]
