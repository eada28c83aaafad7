"""Hangs: pytest-timeout's dumps by test, the dead worker a timeout explains, and the hang
incident with its differential; a faulthandler timeout dump (no progress) is a hang too."""

from __future__ import annotations

from forensics.analyze import differential
from forensics.analyze.logs.crashes import Crash
from forensics.analyze.logs.death_facts import timing_facts
from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.frames import all_frames, frames_of, function_of, node_id_from_frames
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.model import Incident, Stack


def hang_tests(scan: LogScan) -> dict[str, list[Stack]]:
    """pytest-timeout's dumped stacks by the test that timed out (``?`` when none is named)."""
    hung: dict[str, list[Stack]] = {}
    for dump in scan.timeouts:
        key = dump.test or "?"
        hung.setdefault(key, []).extend(dump.stacks)
    # Dumps named by section title ("test_hang") merge into the node id from the summary.
    for title in [k for k in hung if "::" not in k]:
        for full in [k for k in hung if "::" in k]:
            if full.split("::", 1)[1].replace("::", ".") == title or function_of(full) == title:
                hung[full].extend(hung.pop(title))
                break
    return hung


def hang_key(crash: Crash, hung: dict[str, list[Stack]]) -> str | None:
    """The timeout dump that explains a dead worker: by test id, title, or a frame in it."""
    test = crash.test or ""
    func = function_of(test)
    for key in (test, func):
        if key in hung:
            return key
    for key, stacks in hung.items():
        if "::" not in key and any(f.name == func for s in stacks for f in s.frames):
            return key
    return None


def hang_incident(
    scan: LogScan,
    test: str,
    stacks: list[Stack],
    crash: Crash | None,
    named: str | None = None,
) -> Incident:
    """The hang of *test*: its timeout dumps, the worker it took down, the differential."""
    evidence = [
        ev(scan, d.line, d.excerpt)
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
    timing_facts(scan, name, facts)
    differential.apply(incident, facts)
    return incident


def timer_hangs(scan: LogScan, hung: dict[str, list[Stack]]) -> list[Incident]:
    """pytest-timeout's dumps no dead worker claimed: the test hung, its process lived on."""
    incidents = []
    for test, stacks in hung.items():
        # A serial thread-method dump names no test; its frames do.
        named = test if test != "?" else node_id_from_frames(all_frames(stacks), scan.rootdir)
        incidents.append(hang_incident(scan, test, stacks, None, named))
    return incidents


def faulthandler_hangs(scan: LogScan) -> list[Incident]:
    """faulthandler's own timeout dumps (``dump_traceback_later``): nothing moved for that long."""
    return [
        Incident(
            id="",
            cause="hang",
            confidence="medium",
            summary=f"faulthandler timeout dump after {fault.timeout} (no progress)",
            test=fault.test
            or node_id_from_frames(frames_of(fault), scan.rootdir)
            or fault.progress_file,  # the dots line the banner cut short
            evidence=[ev(scan, fault.line, fault.excerpt)],
            stacks=fault.stacks,
            signature=normalize(f"hang faulthandler {fault.test or ''}"),
        )
        for fault in scan.faults
        if fault.timeout is not None
    ]
