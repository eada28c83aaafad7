"""Deaths the tests caused are notes, never incidents; the test running at a death is in charge.

Hand-built bundles (the classifier kit of test_triage_classifier) with the process tree and the
times as the supervisor and the agents record them: no environment variable names a child's test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_triage_classifier import CONTROLLER, GW0, GW1, Bundle, _only, _triage

from forensics.analyze.bundle_source import load_bundle
from forensics.analyze.ownership import Ownership

CHILD, GRANDCHILD, INNER = 400, 500, 600


@pytest.fixture
def xdist(tmp_path: Path) -> Bundle:
    bundle = Bundle(tmp_path / "b")
    bundle.xdist_run()
    return bundle


def _child(bundle: Bundle, pid: int, ppid: int, argv: list[str] | None = None) -> None:
    """A process the supervisor saw start (non-Python: no agent record)."""
    bundle.event("proc-start", bundle.t, pid=pid, ppid=ppid, argv=argv or ["sleep", "60"])


def test_a_child_is_owned_by_the_test_running_when_it_started(xdist: Bundle) -> None:
    xdist.passed(GW0, "t.py::test_before", "gw0")
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_starts_it")
    _child(xdist, CHILD, GW0)
    _child(xdist, GRANDCHILD, CHILD)
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_starts_it", phase="setup", outcome="passed")
    data = load_bundle(xdist.root)
    owners = Ownership(data)
    for pid in (CHILD, GRANDCHILD):
        owner = owners.owner(pid)
        assert owner is not None and owner.process.pid == GW0
        assert owner.test.nodeid == "t.py::test_starts_it"
    # The run's own processes belong to no test.
    assert owners.top_level(CONTROLLER) and owners.top_level(GW0) and owners.top_level(GW1)


def test_a_kill_during_a_passing_test_is_an_expected_death(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_kills_child")
    _child(xdist, CHILD, GW0)
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_kills_child", phase="setup", outcome="passed")
    xdist.exit(CHILD, sig="SIGKILL")
    for phase in ("call", "teardown"):
        xdist.crumb(
            GW0, "phase-end", nodeid="t.py::test_kills_child", phase=phase, outcome="passed"
        )
    triage = _triage(xdist)
    assert triage.incidents == []
    (death,) = triage.expected_deaths
    assert (death.pid, death.signal, death.test) == (CHILD, "SIGKILL", "t.py::test_kills_child")
    assert "passed" in death.reason


def test_a_crash_the_test_provoked_and_passed_is_expected(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_crashes_child")
    _child(xdist, CHILD, GW0, ["python", "-c", "import os; os.abort()"])
    xdist.exit(CHILD, sig="SIGABRT")
    for phase in ("setup", "call", "teardown"):
        xdist.crumb(
            GW0, "phase-end", nodeid="t.py::test_crashes_child", phase=phase, outcome="passed"
        )
    triage = _triage(xdist)
    assert triage.incidents == [] and [d.signal for d in triage.expected_deaths] == ["SIGABRT"]


def test_a_pool_worker_crashed_by_a_later_passing_test_is_expected(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_makes_pool")
    _child(xdist, CHILD, GW0, ["python", "-m", "pool_worker"])
    for phase in ("setup", "call", "teardown"):
        xdist.crumb(GW0, "phase-end", nodeid="t.py::test_makes_pool", phase=phase, outcome="passed")
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_crashes_worker")
    xdist.exit(CHILD, sig="SIGSEGV")
    for phase in ("setup", "call", "teardown"):
        xdist.crumb(
            GW0, "phase-end", nodeid="t.py::test_crashes_worker", phase=phase, outcome="passed"
        )
    triage = _triage(xdist)
    assert triage.incidents == []
    (death,) = triage.expected_deaths
    assert death.test == "t.py::test_crashes_worker"
    assert "started by t.py::test_makes_pool" in death.reason


def test_a_failure_then_a_kill_is_the_failure_with_the_kill_secondary(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_fails")
    _child(xdist, CHILD, GW0)
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_fails", phase="setup", outcome="passed")
    xdist.exit(CHILD, sig="SIGKILL")
    xdist.crumb(
        GW0,
        "phase-end",
        nodeid="t.py::test_fails",
        phase="call",
        outcome="failed",
        message="AssertionError: no answer",
    )
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_fails", phase="teardown", outcome="passed")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.test) == ("python-exception", "t.py::test_fails")
    assert [s.cause for s in incident.secondary] == ["external-kill"]
    assert "during call" in incident.secondary[0].summary


def test_a_child_crash_before_the_failure_is_the_incident_with_the_phase_of_its_time(
    xdist: Bundle,
) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_helper")
    _child(xdist, CHILD, GW0, ["python", "helper.py"])
    xdist.exit(CHILD, sig="SIGSEGV")  # during setup
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_helper", phase="setup", outcome="passed")
    xdist.crumb(
        GW0,
        "phase-end",
        nodeid="t.py::test_helper",
        phase="call",
        outcome="failed",
        message="AssertionError: helper crashed",
    )
    xdist.crumb(GW0, "phase-end", nodeid="t.py::test_helper", phase="teardown", outcome="passed")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.pid, incident.phase) == ("native-crash", CHILD, "setup")
    assert [s.cause for s in incident.secondary] == ["python-exception"]


def test_a_workers_own_death_is_always_an_incident(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_x")
    xdist.exit(GW0, sig="SIGKILL")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.pid) == ("external-kill", GW0)


def test_a_session_a_test_runs_is_that_tests_business(xdist: Bundle) -> None:
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_runs_pytester")
    xdist.process(INNER, GW0, "single")
    xdist.crumb(INNER, "test-start", nodeid="inner.py::test_fails_on_purpose")
    xdist.crumb(
        INNER,
        "phase-end",
        nodeid="inner.py::test_fails_on_purpose",
        phase="setup",
        outcome="passed",
    )
    xdist.crumb(
        INNER,
        "phase-end",
        nodeid="inner.py::test_fails_on_purpose",
        phase="call",
        outcome="failed",
        message="assert 1 == 2",
    )
    xdist.crumb(
        INNER,
        "phase-end",
        nodeid="inner.py::test_fails_on_purpose",
        phase="teardown",
        outcome="passed",
    )
    xdist.crumb(INNER, "session-finish", exitstatus=1)
    xdist.exit(INNER, code=1)
    for phase in ("setup", "call", "teardown"):
        xdist.crumb(
            GW0, "phase-end", nodeid="t.py::test_runs_pytester", phase=phase, outcome="passed"
        )
    triage = _triage(xdist)
    assert triage.incidents == []
    assert triage.run.tests.failed == 0
