"""Turn one log's findings into incidents: pair crash evidence with workers and tests, and
rank consequences (xdist INTERNALERROR, BrokenProcessPool, a broken pipe) below
the crash that caused them.  A consequence is never primary while a cause is in sight.

The flow, one module per job: the dead and what belongs to them (``crashes``), each death's
incident (``crash_incidents``, ``death_facts``), hangs (``hang_incidents``), a runtime's last
words no crash claimed (``native_aborts``), kills and xdist giving up (``kills``); then
INTERNALERRORs and reported failures, classified by the rules bundles use too
(``analyze/classify.py``), and what nothing else explains, here.
"""

from __future__ import annotations

from forensics.analyze import classify
from forensics.analyze.logs.crash_incidents import crash_incident
from forensics.analyze.logs.crashes import attach_natives, collect_crashes
from forensics.analyze.logs.death_facts import weigh_rest
from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.hang_incidents import (
    faulthandler_hangs,
    hang_incident,
    hang_key,
    hang_tests,
    timer_hangs,
)
from forensics.analyze.logs.kills import kill_incidents, max_crashed
from forensics.analyze.logs.native_aborts import native_incidents
from forensics.analyze.logs.oom_victims import split_oom
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.model import Incident, Stack


def correlate(scan: LogScan) -> list[Incident]:
    """Incidents of one log, primary causes only; consequences go into ``secondary``."""
    crashes = collect_crashes(scan)
    orphan_natives = attach_natives(scan, crashes)
    hung = hang_tests(scan)
    oom = split_oom(scan.kills)[0]  # the tests' kills; another program's is only a sign
    sigkill = [k for k in scan.kills if k.kind != "oom" and k.signal == "SIGKILL"]
    incidents: list[Incident] = []
    crash_incidents: list[tuple[int, Incident]] = []
    # The kernel's fault lines name no xdist worker: give them to the dead in order.  Only
    # the interpreter's own: another program's segfault on the machine (node, a database) says
    # nothing about the tests, and must not outrank the OOM kill that does.
    kernel = [k for k in scan.kernel_faults if k.of_tests]
    for crash in crashes:
        # pytest-timeout's thread method ends the worker with os._exit: a hang, not a crash.
        key = hang_key(crash, hung) if crash.fault is None and crash.test else None
        if key is not None and crash.test:
            hang = hang_incident(scan, crash.test, hung.pop(key), crash)
            crash_incidents.append((crash.line, hang))  # a worker it took down can trip xdist
            incidents.append(hang)
            continue
        incident = crash_incident(scan, crash, oom, sigkill, kernel.pop(0) if kernel else None)
        crash_incidents.append((crash.line, incident))
        incidents.append(incident)
    incidents.extend(timer_hangs(scan, hung))
    incidents.extend(faulthandler_hangs(scan))
    for line, incident in native_incidents(scan, orphan_natives):
        crash_incidents.append((line, incident))
        incidents.append(incident)
    kill_incidents(scan, incidents, crash_incidents, oom)
    # xdist giving up before its INTERNALERROR: that has a crash to be secondary to.
    max_crashed(scan, incidents, crash_incidents)
    causes_seen = bool(incidents)
    _internal_errors(scan, incidents, crash_incidents)
    _failures(scan, incidents, crash_incidents, causes_seen)
    _leftovers(scan, incidents)
    for incident in incidents:
        if "differential" not in incident.extra:
            weigh_rest(scan, incident, kernel)
    return incidents


def _internal_errors(
    scan: LogScan, incidents: list[Incident], crash_incidents: list[tuple[int, Incident]]
) -> None:
    gave_up = [e.line for e in scan.worker_events if e.kind == "max-crashed"]
    deaths = [(float(line), incident) for line, incident in crash_incidents]
    for err in scan.internal_errors:
        # The INTERNALERROR xdist raises once it gave up on crashed workers is its own.
        err.in_xdist = err.in_xdist or any(line <= err.line for line in gave_up)
        err.source = f"{scan.source}:{err.line}"
        incident = classify.internal_error_incident(err, deaths, float(err.line))
        if incident is not None:
            incidents.append(incident)


def _failures(
    scan: LogScan,
    incidents: list[Incident],
    crash_incidents: list[tuple[int, Incident]],
    causes_seen: bool,
) -> None:
    # xdist's "[gw3] [ 45%] FAILED test" lines say where each failure ran.
    ran_on = {p.test: p.worker for p in scan.progress if p.worker}
    for failure in scan.failures:
        failure.worker = failure.worker or ran_on.get(failure.test or "")
        failure.source = f"{scan.source}:{failure.line}"
    # The dead in the order they died: a consequence goes to the earliest.  A hang no dead
    # worker stands behind (a timer's dump, a signal-method time-out) left its process alive.
    ended = [incident for _, incident in crash_incidents]
    seen = {id(incident) for incident in ended}
    ended += [i for i in incidents if i.cause in classify.ENDED and id(i) not in seen]
    hangs = [i for i in incidents if i.cause == "hang" and id(i) not in seen]
    found = classify.failure_incidents(scan.failures, classify.Deaths(ended, hangs))
    incidents.extend(found)
    if not found and not causes_seen and not scan.failures:
        for tb in scan.tracebacks[-1:]:
            if tb.exc_type is None and scan.infra:
                continue  # a paste cut before its last line: the infrastructure lines decide
            head = f"{tb.exc_type}: {tb.message}" if tb.exc_type else tb.message
            incidents.append(
                Incident(
                    id="",
                    cause=classify.failure_cause(head),
                    confidence="medium",
                    summary=f"Uncaught {head}"[:300],
                    evidence=[ev(scan, tb.line, tb.excerpt)],
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
                evidence=[ev(scan, i.line, i.text) for i in scan.infra[:5]],
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
