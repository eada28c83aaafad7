"""Incidents from what the run reported rather than from a death: crashed items no dead
process explains, collection errors, failed tests, INTERNALERRORs, repeats.

Failed tests and INTERNALERRORs become the events a log's are (``analyze/events.py``) and are
classified by the same rules (``analyze/classify.py``).
"""

from __future__ import annotations

from forensics.analyze import classify, differential
from forensics.analyze.bundle_source import ProcessRecord
from forensics.analyze.events import InternalError, PythonFailure
from forensics.analyze.logs.scan import scan_lines
from forensics.analyze.logs.scan.internal_errors import XDIST_714
from forensics.analyze.logs.scan.logscan import exc_parts
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.triage_state import TriageState, _repro
from forensics.model import Evidence, Incident

__all__ = ["XDIST_714", "Reported"]
MAX_INTERNAL_LINES = 400  # the end of a long INTERNALERROR traceback says what went wrong


def _error_line(text: str) -> str | None:
    """The line of a pytest error text a person reads first: the exception, else the last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("E ") or line.startswith("ERROR"):
            return line.removeprefix("E").strip()[:300]
    return lines[-1][:300] if lines else None


def _internal_error_event(text: str) -> InternalError:
    """The agent's INTERNALERROR text read by the log scanner, as pytest would have printed it."""
    lines = (
        line if line.startswith("INTERNALERROR>") else f"INTERNALERROR> {line}"
        for line in text.splitlines()[-MAX_INTERNAL_LINES:]
    )
    found = scan_lines(lines, "internalerror").internal_errors
    if not found:
        return InternalError(
            None,
            text.strip()[-300:] or "INTERNALERROR",
            0,
            text[-4000:],
            source="xdist INTERNALERROR",
        )
    # A chained exception is one error: its last traceback says what was raised, any part in
    # xdist makes it xdist's.
    err = found[-1]
    err.in_xdist = any(e.in_xdist for e in found)
    err.ref = next((e.ref for e in reversed(found) if e.ref), None)
    err.source, err.excerpt = "xdist INTERNALERROR", text[-4000:]
    return err


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
                cause = classify.failure_cause(text)
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
        failures: list[PythonFailure] = []
        for rec in self.data.processes.values():
            if rec.role not in ("worker", "single") or not self.ownership.top_level(rec.pid):
                continue
            for index, test in enumerate(rec.tests):
                failed = [p for p, o in test.phases.items() if o == "failed"]
                if failed:
                    failures.append(self._failure_event(rec, index, failed[0]))
        # Every death a bundle holds ended its process (a hang's too: forensics or the timer
        # ended it), and the failure of its test follows from it.
        ended = [i for i in self.incidents if i.cause in differential.DEATH_CAUSES]
        self.incidents.extend(classify.failure_incidents(failures, classify.Deaths(ended)))

    def _failure_event(self, rec: ProcessRecord, index: int, phase: str) -> PythonFailure:
        """The agent's record of a failed test as the event a log's failure section is."""
        test = rec.tests[index]
        message = test.messages[-1] if test.messages else "failed"
        first = message.splitlines()[0].strip() if message.strip() else "failed"
        exc_type, text = exc_parts(first)
        prior = [t.nodeid for t in rec.tests[:index]]
        return PythonFailure(
            test.nodeid,
            "failed",
            exc_type,
            text[:300],
            normalize(first),
            index,
            message[:4000],
            worker=rec.worker,
            phase=phase,
            source=f"workers/{rec.pid}.jsonl",
            pid=rec.pid,
            time=test.end,
            prior_tests=prior,
            repro=_repro(rec, [*prior, test.nodeid]),
            location=(
                {"file": test.location[0], "line": test.location[1]}
                if test.location is not None
                else None
            ),
        )

    def _internal_errors(self) -> None:
        # In the order they happened: an INTERNALERROR belongs to the death before it.
        deaths = sorted(
            (
                (incident.time or 0.0, incident)
                for incident in self.incidents
                if incident.cause in differential.DEATH_CAUSES
            ),
            key=lambda pair: pair[0],
        )
        for raw in self.controller_records:
            text = raw.get("text")
            if raw.get("kind") != "internalerror" or not isinstance(text, str):
                continue
            stamp = raw.get("t")
            at = float(stamp) if isinstance(stamp, (int, float)) else 0.0
            err = _internal_error_event(text)
            incident = classify.internal_error_incident(err, deaths, at)
            if incident is not None:
                incident.time = at or None
                self.incidents.append(incident)

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
