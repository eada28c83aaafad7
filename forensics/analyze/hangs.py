"""Hang incidents: stalls the supervisor caught, runs that ignored Ctrl-C or hit --timeout, and
workers that pytest-timeout's thread method ended with ``os._exit(1)``.

The processes the supervisor ended after taking evidence died of SIGTERM/SIGKILL; those deaths
are the remedy, not the incident, so they are reported as "explained" and not blamed again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.analyze.bundle_source import BundleData, ProcessRecord, TestRun
from forensics.analyze.ownership import Ownership
from forensics.analyze.sigint import d_state_reason, sigint_reasons
from forensics.bundle import STACKS_DIR, is_real_dir, read_bundle_bytes
from forensics.model import Evidence, Frame, Incident, Stack, is_harness_frame
from forensics.stackrecords import stack_from_record

# A Python function this many times on one stack is a runaway recursion, not a deep call.
RECURSION_DEPTH = 20
# CPU share (of one core) above which a stalled process is busy rather than blocked: a blocked
# one uses next to nothing, a busy one on a loaded 2-core CI runner may get a quarter of a core.
BUSY_CPU_PERCENT = 20.0
_MIB = 1024 * 1024

MAX_EVIDENCE_FILE = 16 * 1024 * 1024


@dataclass
class HangFindings:
    incidents: list[Incident] = field(default_factory=list)
    # Pids whose death (by our SIGTERM/SIGKILL) is explained by a hang incident.
    explained: set[int] = field(default_factory=set)


def _stacks_from_file(bundle: Path, name: str) -> list[Stack]:
    if not is_real_dir(bundle / STACKS_DIR):
        return []
    path = bundle / STACKS_DIR / Path(name).name
    try:
        raw = read_bundle_bytes(path, MAX_EVIDENCE_FILE + 1)
        if len(raw) > MAX_EVIDENCE_FILE:
            return []
        data = json.loads(raw.decode("utf-8", "replace"))
    except (OSError, ValueError):
        return []
    records = data.get("stacks") if isinstance(data, dict) else None
    return [stack_from_record(r) for r in records or [] if isinstance(r, dict)]


def _evidence_after(data: BundleData, index: int, pid: int | None) -> dict[str, Any] | None:
    """The first evidence event after journal position *index* that covers *pid*."""
    for ev in data.events[index + 1 :]:
        if ev.get("kind") != "evidence":
            continue
        roots = ev.get("root_pids")
        if pid is None or (isinstance(roots, list) and pid in roots):
            return ev
    return None


def _stack_order(first_pid: int | None) -> Any:
    """The stalled process before its children; its main thread before helper threads."""

    def key(stack: Stack) -> tuple[bool, bool, bool]:
        helper = all(f.native or "execnet" in (f.file or "") for f in stack.frames)
        return (stack.pid != first_pid, "MainThread" not in stack.thread, helper)

    return key


def _apply_evidence(
    incident: Incident,
    data: BundleData,
    evidence: dict[str, Any] | None,
    first_pid: int | None,
    *,
    signals: bool = False,
) -> set[int]:
    if evidence is None:
        incident.evidence.append(
            Evidence(source="events.jsonl", excerpt="no stack evidence was recorded")
        )
        return set()
    pids: set[int] = set()
    processes = [p for p in evidence.get("processes") or [] if isinstance(p, dict)]
    # The stalled process first, then what it started.
    processes.sort(key=lambda p: (p.get("pid") != first_pid, p.get("pid") or 0))
    methods: dict[str, str] = {}
    diagnosis: list[str] = []
    for proc in processes:
        pid = proc.get("pid")
        if not isinstance(pid, int):
            continue
        pids.add(pid)
        method = str(proc.get("method"))
        methods[str(pid)] = method
        argv = " ".join(a for a in proc.get("argv") or [] if isinstance(a, str))[:200]
        state = f"state {proc.get('state')}" + (
            f", wchan {proc['wchan']}" if proc.get("wchan") else ""
        )
        line = f"pid {pid} ({argv}): {state}; stacks via {method}"
        if method != "py-spy" and proc.get("why"):
            line += f" — {proc['why']}"
            if proc.get("hint"):
                line += f" (fix: {proc['hint']})"
        incident.evidence.append(Evidence(source="stacks/", excerpt=line))
        if proc.get("d_state"):
            diagnosis.append(d_state_reason(pid, proc.get("wchan") or "?", [], True))
        # Why Ctrl-C did not work matters only when Ctrl-C was what failed.
        for reason in sigint_reasons(proc.get("sigint")) if signals else []:
            if reason not in diagnosis:
                diagnosis.append(reason)
        for name in proc.get("files") or []:
            if isinstance(name, str) and name.endswith(".evidence.json"):
                incident.stacks.extend(_stacks_from_file(data.path, name))
    incident.stacks.sort(key=_stack_order(first_pid))
    incident.extra["hang"] = {
        "evidence_s": evidence.get("duration_s"),
        "methods": methods,
        "diagnosis": diagnosis,
    }
    for reason in diagnosis:
        incident.evidence.append(Evidence(source="/proc", excerpt=reason))
    return pids


def find_hangs(data: BundleData, prior: Any, ownership: Ownership) -> HangFindings:
    """*prior(rec, test)* gives the tests before *test* in *rec* and the repro command."""
    found = HangFindings()
    by_pid = data.processes
    for index, ev in enumerate(data.events):
        kind = ev.get("kind")
        if kind == "stall":
            pid = ev.get("pid") if isinstance(ev.get("pid"), int) else None
            rec = by_pid.get(pid) if pid is not None else None
            test = ev.get("test") if isinstance(ev.get("test"), str) else None
            idle, limit = ev.get("idle_s"), ev.get("limit_s")
            incident = Incident(
                id="",
                cause="hang",
                confidence="high",
                summary=f"{_who(rec, pid)} made no progress for {idle}s in {test or 'a test'}"
                f" (--hang-timeout {limit}); its stacks were taken and it was ended",
                worker=ev.get("worker") if isinstance(ev.get("worker"), str) else None,
                pid=pid,
                test=test,
                phase=ev.get("phase") if isinstance(ev.get("phase"), str) else None,
                time=ev.get("t") if isinstance(ev.get("t"), float) else None,
            )
            if rec is not None and test is not None:
                incident.prior_tests, incident.repro = prior(rec, test)
            evidence = _evidence_after(data, index, pid)
            found.explained |= _apply_evidence(incident, data, evidence, pid)
            if pid is not None:
                found.explained.add(pid)
            _busy_or_blocked(incident, ev, rec, evidence)
            if rec is not None and test is not None and incident.time is not None:
                _children_dead_before(incident, data, ownership, rec, test, incident.time)
            found.incidents.append(incident)
        elif kind == "unresponsive":
            found.incidents.append(_unresponsive(data, index, ev, prior, found))
    return found


def _unresponsive(
    data: BundleData, index: int, ev: dict[str, Any], prior: Any, found: HangFindings
) -> Incident:
    reason = ev.get("reason")
    busy = [r for r in data.processes.values() if r.role in ("worker", "single") and r.open_test]
    rec = busy[0] if busy else None
    test = rec.open_test.nodeid if rec is not None and rec.open_test is not None else None
    if reason == "run-timeout":
        limit = (
            data.manifest.get("options", {}).get("timeout")
            if isinstance(data.manifest.get("options"), dict)
            else None
        )
        summary = f"the run exceeded --timeout {limit}s" + (
            f" while running {test}" if test else ""
        )
    else:
        grace = ev.get("grace_s")
        summary = f"the command did not exit within {grace}s of Ctrl-C (SIGINT)"
    incident = Incident(
        id="",
        cause="hang",
        confidence="high",
        summary=summary,
        worker=rec.worker if rec is not None else None,
        pid=rec.pid if rec is not None else None,
        test=test,
        phase=rec.open_test.open_phase if rec is not None and rec.open_test else None,
        time=ev.get("t") if isinstance(ev.get("t"), float) else None,
    )
    if rec is not None and test is not None:
        incident.prior_tests, incident.repro = prior(rec, test)
    first = rec.pid if rec is not None else None
    found.explained |= _apply_evidence(
        incident, data, _evidence_after(data, index, None), first, signals=reason == "interrupt"
    )
    diagnosis = incident.extra.get("hang", {}).get("diagnosis") or []
    if reason != "run-timeout":
        if diagnosis:
            incident.summary += f": {diagnosis[0]}"
        else:
            incident.summary += ": SIGINT was delivered but nothing in /proc explains the delay"
    return incident


def _busy_or_blocked(
    incident: Incident,
    stall: dict[str, Any],
    rec: ProcessRecord | None,
    evidence: dict[str, Any] | None,
) -> None:
    """Busy (on a CPU, memory growing) or blocked (asleep in a lock or a system call), and where.

    A spinning loop and a deadlock are different bugs; the native frame that happens to be on
    top of a thread busy in Python code is not where it hangs.
    """
    cpu = stall.get("cpu_percent")
    cpu = float(cpu) if isinstance(cpu, (int, float)) and not isinstance(cpu, bool) else None
    main = next((s for s in incident.stacks if s.pid == incident.pid), None)
    busy = (main is not None and main.state == "running") or (
        cpu is not None and cpu >= BUSY_CPU_PERCENT
    )
    facts: dict[str, Any] = {"activity": "busy" if busy else "blocked", "cpu_percent": cpu}
    words = [f"busy at {cpu:.0f}% CPU" if busy and cpu is not None else "busy" if busy else ""]
    if not busy:
        state = main.state if main is not None else None
        words = [
            f"blocked ({state or 'asleep'}" + (f", {cpu:.0f}% CPU)" if cpu is not None else ")")
        ]
    rss = stall.get("rss_bytes")
    test = (
        next((t for t in reversed(rec.tests) if t.nodeid == incident.test), None) if rec else None
    )
    if isinstance(rss, int) and test is not None and test.rss_start is not None:
        growth = rss - test.rss_start
        facts["rss_growth_bytes"] = growth
        if abs(growth) >= _MIB:
            words.append(f"RSS {growth / _MIB:+.0f} MiB since the test started")
    if main is not None:
        recursion = _recursion(main)
        place = _innermost_python(main)
        if recursion is not None:
            facts["recursion"] = recursion
            words.append(f"in a runaway recursion of {recursion}")
        elif place is not None:
            words.append(f"in {place}")
    wchan = _wchan(evidence, incident.pid)
    if not busy and wchan:
        words.append(f"kernel wait {wchan}")
    incident.extra.setdefault("hang", {}).update(facts)
    text = ", ".join(w for w in words if w)
    if text:
        incident.summary = incident.summary.replace(
            "; its stacks were taken", f": {text}; its stacks were taken", 1
        )


def _recursion(stack: Stack) -> str | None:
    counts: dict[tuple[str, str | None], int] = {}
    for frame in stack.frames:
        if not frame.native:
            key = (frame.name, frame.file)
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    (name, file), depth = max(counts.items(), key=lambda kv: kv[1])
    return f"{name} ({file}, {depth} frames deep)" if depth >= RECURSION_DEPTH else None


_STDLIB = re.compile(r"/lib/python3[\d.]*/(?!site-packages/|dist-packages/)")


def _innermost_python(stack: Stack) -> str | None:
    """Where the thread waits, and when that is the standard library, the code that called it."""
    frames = [f for f in stack.frames if not f.native and not is_harness_frame(f)]
    if not frames:
        return None
    place = _frame_text(frames[0])
    if _STDLIB.search(frames[0].file or ""):
        caller = next((f for f in frames[1:] if not _STDLIB.search(f.file or "")), None)
        if caller is not None:
            place += f", called from {_frame_text(caller)}"
    return place


def _frame_text(frame: Frame) -> str:
    line = f":{frame.line}" if frame.line is not None else ""
    return f"{frame.name} ({frame.file}{line})"


def _wchan(evidence: dict[str, Any] | None, pid: int | None) -> str | None:
    for proc in (evidence or {}).get("processes") or []:
        if isinstance(proc, dict) and proc.get("pid") == pid and isinstance(proc.get("wchan"), str):
            return str(proc["wchan"]) if proc["wchan"] not in ("0", "") else None
    return None


def _children_dead_before(
    incident: Incident,
    data: BundleData,
    ownership: Ownership,
    rec: ProcessRecord,
    test: str,
    stall_time: float,
) -> None:
    """Processes the hung test started that had already ended: often the reason it waits."""
    dead: list[dict[str, Any]] = []
    for proc in data.processes.values():
        owner = ownership.owner(proc.pid)
        if owner is None or owner.test.nodeid != test or proc.end is None:
            continue
        if owner.process.pid != rec.pid or proc.end >= stall_time:
            continue
        how = (
            f"killed by {proc.signal}"
            if proc.signal
            else f"exited with status {proc.exit_code}"
            if proc.exit_code is not None
            else "ended"
        )
        argv = " ".join(proc.argv)[:120] or "?"
        before = stall_time - proc.end
        dead.append({"pid": proc.pid, "argv": argv, "how": how, "before_s": round(before, 1)})
        incident.evidence.append(
            Evidence(
                source="events.jsonl",
                excerpt=f"pid {proc.pid} ({argv}), started by the test, {how} "
                f"{before:.1f} s before the stall",
            )
        )
    if dead:
        dead.sort(key=lambda d: -d["before_s"])
        incident.extra.setdefault("hang", {})["children_dead_before"] = dead
        first = dead[0]
        incident.summary += (
            f"; pid {first['pid']} it started had {first['how']} {first['before_s']} s before"
        )


def timeout_kill(rec: ProcessRecord) -> tuple[TestRun, dict[str, Any]] | None:
    """The open test, if pytest-timeout's thread method (os._exit(1)) ended this process."""
    test = rec.open_test
    if test is None or rec.signal is not None or rec.exit_code != 1 or test.timeout is None:
        return None
    if test.timeout_method != "thread":
        return None
    end = rec.end
    if end is not None and end - test.start < test.timeout * 0.8:
        return None
    return test, {"timeout_s": test.timeout, "method": test.timeout_method}


def _who(rec: ProcessRecord | None, pid: int | None) -> str:
    if rec is not None and rec.worker:
        return f"worker {rec.worker}"
    if rec is not None and rec.role in ("single", "controller"):
        return "the pytest process"
    return f"process {pid}"
