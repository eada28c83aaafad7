"""Incidents from what the run reported rather than from a death: crashed items no dead
process explains, collection errors, failed tests, INTERNALERRORs, repeats."""

from __future__ import annotations

import re

from forensics.analyze.logs.signatures import normalize
from forensics.analyze.triage_state import TriageState, _repro
from forensics.model import (
    Evidence,
    Incident,
    Secondary,
)
from forensics.rules import INFRASTRUCTURE

XDIST_714 = "pytest-dev/pytest-xdist#714"
_INFRA_RE = INFRASTRUCTURE  # one rule set with the log side: forensics/rules.py


_TIMEOUT_RE = re.compile(r"Failed: Timeout >[\d.]+s|Timeout \(\d+:\d\d:\d\d")


def _failure_cause(message: str) -> str:
    if _TIMEOUT_RE.search(message):
        # pytest-timeout's signal method fails the test instead of killing the process.
        return "hang"
    if _INFRA_RE.search(message):
        return "infrastructure"
    return "python-exception"


def _error_line(text: str) -> str | None:
    """The line of a pytest error text a person reads first: the exception, else the last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("E ") or line.startswith("ERROR"):
            return line.removeprefix("E").strip()[:300]
    return lines[-1][:300] if lines else None


class Reported(TriageState):
    """Incidents from the run's reports."""

    # --- reports that no dead process explains -----------------------------------------------

    def _crash_items_without_incident(self) -> None:
        blamed = {(i.worker, i.test) for i in self.incidents}
        for raw in self.controller_records:
            if raw.get("kind") != "crash-item":
                continue
            worker, nodeid = raw.get("worker"), raw.get("nodeid")
            if not isinstance(nodeid, str) or (worker, nodeid) in blamed:
                continue
            blamed.add((worker, nodeid))
            down = next(
                (
                    r
                    for r in self.controller_records
                    if r.get("kind") == "node-down" and r.get("worker") == worker
                ),
                {},
            )
            self.incidents.append(
                Incident(
                    id="",
                    cause="unknown",
                    confidence="low",
                    summary=f"worker {worker} went down while running {nodeid}; "
                    "no exit status or fault dump was captured",
                    worker=worker if isinstance(worker, str) else None,
                    pid=down.get("worker_pid") if isinstance(down.get("worker_pid"), int) else None,
                    test=nodeid,
                    evidence=[Evidence(source="xdist", excerpt=str(down.get("error") or ""))],
                )
            )

    def _collect_errors(self) -> None:
        """A module that failed to import or collect: every worker reports it; one incident."""
        seen: set[str] = set()
        for rec in self.data.processes.values():
            if rec.role is None or not self.ownership.top_level(rec.pid):
                continue
            for nodeid, text, when in rec.collect_errors:
                if nodeid in seen:
                    continue
                seen.add(nodeid)
                head = _error_line(text) or "collection failed"
                cause = _failure_cause(text)
                self.incidents.append(
                    Incident(
                        id="",
                        cause=cause,
                        confidence="high",
                        summary=f"{nodeid or 'the test session'} could not be collected: {head}",
                        worker=rec.worker,
                        pid=rec.pid,
                        test=nodeid or None,
                        phase="collect",
                        signature=normalize(head),
                        time=when,
                        evidence=[
                            Evidence(source=f"workers/{rec.pid}.jsonl", excerpt=text[-4000:])
                        ],
                    )
                )

    def _failed_tests(self) -> None:
        crashed = {(i.test, i.worker) for i in self.incidents if i.test}
        crashed_tests = {i.test for i in self.incidents if i.test}
        for rec in self.data.processes.values():
            if rec.role not in ("worker", "single") or not self.ownership.top_level(rec.pid):
                continue
            for test in rec.tests:
                failed = [p for p, o in test.phases.items() if o == "failed"]
                if not failed:
                    continue
                message = test.messages[-1] if test.messages else "failed"
                if test.nodeid in crashed_tests:
                    # The test failed because a process it started crashed: a consequence.
                    for incident in self.incidents:
                        if incident.test == test.nodeid and incident.extra.get("in_child_process"):
                            incident.secondary.append(
                                Secondary(cause="python-exception", summary=message[:300])
                            )
                    continue
                if (test.nodeid, rec.worker) in crashed:
                    continue
                cause = _failure_cause(message)
                phase = failed[0]
                incident = Incident(
                    id="",
                    cause=cause,
                    confidence="medium" if cause == "infrastructure" else "high",
                    summary=f"{test.nodeid} failed in {phase}: {message.splitlines()[0][:200]}",
                    worker=rec.worker,
                    pid=rec.pid,
                    test=test.nodeid,
                    phase=phase,
                    prior_tests=[t.nodeid for t in rec.tests[: rec.tests.index(test)]],
                    signature=normalize(message.splitlines()[0] if message else ""),
                    time=test.end,
                    evidence=[Evidence(source=f"workers/{rec.pid}.jsonl", excerpt=message[:4000])],
                )
                incident.repro = _repro(rec, [*incident.prior_tests, test.nodeid])
                if test.location is not None:
                    incident.extra["location"] = {
                        "file": test.location[0],
                        "line": test.location[1],
                    }
                if "MemoryError" in message:
                    incident.secondary.append(
                        Secondary(
                            cause="oom-kill",
                            summary="Python could not allocate memory (MemoryError): the process "
                            "hit a memory limit without being killed",
                        )
                    )
                self.incidents.append(incident)

    def _internal_errors(self) -> None:
        for raw in self.controller_records:
            if raw.get("kind") != "internalerror":
                continue
            text = raw.get("text") if isinstance(raw.get("text"), str) else ""
            assert isinstance(text, str)
            is_714 = "KeyError" in text and "WorkerController" in text
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "INTERNALERROR")
            head = last.replace("INTERNALERROR>", "").strip()
            summary = f"xdist INTERNALERROR: {head[:200]}"
            ref = XDIST_714 if is_714 else None
            crashes = [
                i
                for i in self.incidents
                if i.cause in ("native-crash", "oom-kill", "external-kill", "unexpected-exit")
            ]
            if crashes:
                crashes[0].secondary.append(
                    Secondary(cause="xdist-internal", summary=summary, ref=ref)
                )
                crashes[0].evidence.append(
                    Evidence(source="xdist INTERNALERROR", excerpt=text[-3000:])
                )
            else:
                self.incidents.append(
                    Incident(
                        id="",
                        cause="xdist-internal",
                        confidence="high" if is_714 else "medium",
                        summary=summary,
                        signature=normalize(f"INTERNALERROR {head}"),
                        evidence=[Evidence(source="xdist INTERNALERROR", excerpt=text[-4000:])],
                        extra={"ref": ref} if ref else {},
                    )
                )

    def _mark_repeats(self) -> None:
        first: dict[str, Incident] = {}
        for number, incident in enumerate(self.incidents, 1):
            if incident.test is None or incident.cause in ("python-exception", "infrastructure"):
                continue
            if incident.test in first:
                incident.repeat_of = f"I{self.incidents.index(first[incident.test]) + 1}"
            else:
                first[incident.test] = incident
            del number
