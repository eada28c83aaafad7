"""One rule set for what a run reported: failed tests and pytest's INTERNALERRORs.

A bundle and a raw log of the same run turn their reports into the same events
(``analyze/events.py``); this module decides each one's cause and draws its incident, so both
sources say the same thing about the same failure:

- a failure is ``hang`` when pytest-timeout (or faulthandler's timer) failed it, ``infrastructure``
  when its message names a network, registry or service error (``forensics/rules.py``), else
  ``python-exception``; failures with the same cause and signature are one incident;
- a failure a death explains is not an incident of its own: the death's test failing, xdist's
  "crashed while running", a timed-out test's failure after its hang, or a consequence
  (``BrokenProcessPool``, a broken pipe) while a process died is secondary to that death;
- an INTERNALERROR is secondary to the death before it (xdist often trips over a worker it lost),
  infrastructure when a plugin's network call failed, else ``xdist-internal`` when its traceback
  is in xdist and ``python-exception`` when it is in a plugin or conftest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from forensics.analyze.events import InternalError, PythonFailure
from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.testids import last_name, same_node
from forensics.model import Evidence, Incident, Secondary

MAX_TESTS_PER_GROUP = 20
MAX_EVIDENCE = 5
MAX_SECONDARY = 10
# pytest-timeout's failure ("Failed: Timeout >5.0s", "Failed: Timeout (>5.0s) from
# pytest-timeout.") and faulthandler's timer header ("Timeout (0:00:05)!").
TIMED_OUT = re.compile(rf"{P.TIMEOUT_FAILED.pattern}|Timeout \(\d+:\d\d:\d\d")


def failure_cause(head: str) -> str:
    if TIMED_OUT.search(head):
        return "hang"  # the signal method fails the test instead of ending the process
    if P.INFRA.search(head):
        return "infrastructure"
    return "python-exception"


def _evidence(event: PythonFailure | InternalError) -> Evidence:
    return Evidence(event.source or f"line {event.line}", event.excerpt)


def _add_secondary(target: Incident, cause: str, summary: str, ref: str | None = None) -> None:
    if len(target.secondary) < MAX_SECONDARY and not any(
        s.summary == summary for s in target.secondary
    ):
        target.secondary.append(Secondary(cause, summary, ref))


# The causes of a death that surely ended its process (a log's hang may not have).
ENDED = ("native-crash", "oom-kill", "external-kill", "unexpected-exit", "unknown")


class Deaths:
    """A run's deaths, looked up by test (by its last name first, so lookups stay cheap).

    ``ended`` ended their process: a failure of their test, or a broken pipe to them, follows
    from them.  ``hangs`` may have left theirs alive (faulthandler's timer dumps and goes on,
    pytest-timeout's signal method fails the test): only their test's time-out is theirs.
    """

    def __init__(self, ended: Iterable[Incident], hangs: Iterable[Incident] = ()) -> None:
        self.ended = list(ended)
        self.hangs = list(hangs)
        self._ended_ids = {id(incident) for incident in self.ended}
        self._by_function: dict[str, list[Incident]] = {}
        for incident in (*self.ended, *self.hangs):
            if incident.test:
                self._by_function.setdefault(last_name(incident.test), []).append(incident)

    def ended_process(self, death: Incident) -> bool:
        return id(death) in self._ended_ids

    def of_test(self, test: str | None) -> list[Incident]:
        if not test:
            return []
        return [i for i in self._by_function.get(last_name(test), []) if same_node(i.test, test)]


def _consequence_of(failure: PythonFailure, deaths: list[Incident]) -> Incident | None:
    """The death a broken pipe, pool or channel follows from: the failing test's worker's own
    (or the one death, when the log does not say where it ran), and never a later one."""
    for death in deaths:
        if failure.worker and death.worker and death.worker != failure.worker:
            continue
        if failure.time is not None and death.time is not None and death.time > failure.time:
            continue
        return death
    return None


def explained_by_death(failure: PythonFailure, deaths: Deaths) -> bool:
    """Whether *failure* follows from one of *deaths*; a consequence becomes its secondary."""
    if "crashed while run" in failure.message:
        return True  # xdist's own report of the dead worker (cut short as "run..." by -r)
    head = failure.head
    summary = f"{failure.test or 'A test'} {failure.kind}: {head}"[:300]
    for death in deaths.of_test(failure.test):
        if not deaths.ended_process(death) and not TIMED_OUT.search(head):
            continue  # the hung test went on and failed of something else
        if death.extra.get("in_child_process"):
            # The test failed because a process it started crashed.
            _add_secondary(death, "python-exception", summary)
        return True
    if deaths.ended and P.CONSEQUENCE.search(head):
        target = _consequence_of(failure, deaths.ended)
        if target is not None:
            _add_secondary(target, "python-exception", summary)
            return True
    return False


def failure_incidents(failures: Iterable[PythonFailure], deaths: Deaths) -> list[Incident]:
    """The failures none of *deaths* explains, one incident per cause and signature."""
    groups: dict[tuple[str, str], Incident] = {}
    for failure in failures:
        if explained_by_death(failure, deaths):
            continue
        head = failure.head.strip().splitlines()[0] if failure.head.strip() else ""
        cause = failure_cause(failure.head)
        if (failure.exc_type or "").endswith("PanicException"):
            # PyO3 turned a Rust panic into this exception: the panic's message is the bug.
            head += " (a Rust panic raised into Python by PyO3)"
        incident = groups.get((cause, failure.signature))
        if incident is None:
            where = f" in {failure.phase}" if failure.phase else ""
            # An exception whose type is known, or that the agent recorded itself, is the
            # test's own; a network error in a message may still be the code's bug.
            known = failure.exc_type is not None or failure.pid is not None
            incident = Incident(
                id="",
                cause=cause,
                confidence="medium" if cause == "infrastructure" or not known else "high",
                summary=(
                    f"{failure.test or 'A test'} {failure.kind}{where}"
                    + (f": {head}" if head else " (no message in the log)")
                )[:300],
                worker=failure.worker,
                pid=failure.pid,
                test=failure.test,
                phase=failure.phase,
                prior_tests=list(failure.prior_tests),
                repro=failure.repro,
                signature=failure.signature,
                time=failure.time,
                extra={"count": 0, "tests": []},
            )
            if failure.location is not None:
                incident.extra["location"] = failure.location
            if "MemoryError" in failure.head:
                incident.secondary.append(
                    Secondary(
                        cause="oom-kill",
                        summary="Python could not allocate memory (MemoryError): the process "
                        "hit a memory limit without being killed",
                    )
                )
            groups[(cause, failure.signature)] = incident
        incident.extra["count"] += 1
        if failure.test and len(incident.extra["tests"]) < MAX_TESTS_PER_GROUP:
            incident.extra["tests"].append(failure.test)
        if len(incident.evidence) < MAX_EVIDENCE:
            incident.evidence.append(_evidence(failure))
    for incident in groups.values():
        count = incident.extra["count"]
        if count > 1:
            incident.summary = f"{incident.summary} (and {count - 1} more with the same signature)"
    return list(groups.values())


def internal_error_incident(
    err: InternalError, deaths: list[tuple[float, Incident]], at: float
) -> Incident | None:
    """*err*'s own incident, or ``None`` when it became the secondary of a death.

    ``deaths`` are the run's deaths with when each happened (a log line or a time), ``at`` is
    when *err* was raised, on the same scale.
    """
    module = ""
    if err.where and ":" in err.where:
        path, func = err.where.rsplit(":", 1)
        module = f" in {os.path.splitext(os.path.basename(path))[0]} {func}"
    head = err.head
    summary = f"INTERNALERROR {head}{module}"[:300]
    if P.INFRA.search(head) and not err.in_xdist:
        # A conftest or plugin that needs the network failed the session: the network's fault,
        # whatever pytest calls it.
        return Incident(
            id="",
            cause="infrastructure",
            confidence="medium",
            summary=summary,
            evidence=[_evidence(err)],
            signature=normalize(f"infrastructure {head}"),
        )
    cause = "xdist-internal" if err.in_xdist else "python-exception"
    if deaths:
        before = [incident for when, incident in deaths if when <= at]
        target = before[-1] if before else deaths[0][1]
        _add_secondary(target, cause, summary, err.ref)
        if not any(e.excerpt == err.excerpt for e in target.evidence):
            target.evidence.append(_evidence(err))
        return None
    return Incident(
        id="",
        cause=cause,
        confidence="high" if err.ref else "medium",
        summary=f"{summary} (known bug {err.ref})" if err.ref else summary,
        evidence=[_evidence(err)],
        signature=normalize(f"INTERNALERROR {head}"),
        extra={"ref": err.ref} if err.ref else {},
    )
