"""The classifier on hand-built bundles: each file written as the supervisor and agents write it,
then `analyze_bundle` attributes every death, and never blames what did not die."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from forensics.analyze.logs.correlate import correlate
from forensics.analyze.logs.scan import scan_lines
from forensics.analyze.reported import XDIST_714
from forensics.analyze.triage import analyze_bundle
from forensics.model import Incident, Triage

FIXTURES = Path(__file__).parent.parent / "fixtures" / "logs"

T0 = 1_700_000_000.0
CONTROLLER, GW0, GW1, CHILD = 100, 200, 300, 400

SEGV_DUMP = """\
Fatal Python error: Segmentation fault

Current thread 0x00007f0000000001 (most recent call first):
  File "/usr/lib/python3.11/ctypes/__init__.py", line 519 in string_at
  File "/suite/test_crash.py", line 5 in test_segv
  File "/usr/lib/python3.11/site-packages/_pytest/python.py", line 166 in pytest_pyfunc_call
"""


class Bundle:
    """Writes a bundle as `forensics wrap` and the agents lay it out."""

    def __init__(self, root: Path, *, exit_status: int | None = 1, finished: bool = True) -> None:
        self.root = root
        for sub in ("workers", "faults", "stacks", "system"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        manifest: dict[str, Any] = {
            "schema": "forensics.bundle/1",
            "run_id": "r1",
            "command": ["python", "-m", "pytest", "-n", "2"],
            "cwd": "/suite",
            "start": T0,
            "end": T0 + 30 if finished else None,
            "exit_status": exit_status if finished else None,
        }
        (root / "manifest.json").write_text(json.dumps(manifest))
        self.event("run-start", 0.0)
        self.t = 1.0

    def _append(self, path: Path, record: dict[str, Any]) -> None:
        with open(path, "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def event(self, kind: str, t: float, **fields: Any) -> None:
        self._append(self.root / "events.jsonl", {"t": T0 + t, "kind": kind, **fields})

    def crumb(self, pid: int, kind: str, **fields: Any) -> None:
        self.t += 0.01
        record = {"t": T0 + self.t, "kind": kind, "pid": pid, **fields}
        self._append(self.root / "workers" / f"{pid}.jsonl", record)

    def process(self, pid: int, ppid: int, role: str | None, worker: str | None = None) -> None:
        self.event("proc-start", self.t, pid=pid, ppid=ppid, argv=["python", "-c"])
        self.crumb(
            pid,
            "process-start",
            ppid=ppid,
            argv=["-c"],
            executable="/usr/bin/python3",
            cwd="/suite",
            how="exec",
        )
        if role is not None:
            self.crumb(
                pid, "session-start", role=role, worker=worker, rootdir="/suite", args=["-n", "2"]
            )

    def passed(self, pid: int, nodeid: str, worker: str | None = None) -> None:
        self.crumb(pid, "test-start", nodeid=nodeid, rss=1000)
        for phase in ("setup", "call", "teardown"):
            self.crumb(pid, "phase-end", nodeid=nodeid, phase=phase, outcome="passed")
            self.crumb(
                CONTROLLER, "report", nodeid=nodeid, phase=phase, outcome="passed", worker=worker
            )
        self.crumb(pid, "test-end", nodeid=nodeid, rss=1000)

    def failed(self, pid: int, nodeid: str, message: str, worker: str | None = None) -> None:
        self.crumb(pid, "test-start", nodeid=nodeid)
        self.crumb(pid, "phase-end", nodeid=nodeid, phase="setup", outcome="passed")
        self.crumb(
            pid,
            "phase-end",
            nodeid=nodeid,
            phase="call",
            outcome="failed",
            message=message,
            location=["/suite/t.py", 3],
        )
        self.crumb(
            CONTROLLER,
            "report",
            nodeid=nodeid,
            phase="call",
            outcome="failed",
            worker=worker,
            message=message,
        )
        self.crumb(pid, "phase-end", nodeid=nodeid, phase="teardown", outcome="passed")
        self.crumb(pid, "test-end", nodeid=nodeid)

    def dies_in(
        self, pid: int, nodeid: str, phase: str = "call", worker: str | None = None
    ) -> None:
        self.crumb(pid, "test-start", nodeid=nodeid)
        self.crumb(pid, "phase-end", nodeid=nodeid, phase="setup", outcome="passed")
        self.crumb(
            CONTROLLER, "report", nodeid=nodeid, phase="setup", outcome="passed", worker=worker
        )
        if phase == "teardown":
            self.crumb(pid, "phase-end", nodeid=nodeid, phase="call", outcome="passed")

    def exit(self, pid: int, *, code: int | None = None, sig: str | None = None) -> None:
        self.event("proc-exit", self.t, pid=pid, exit_code=code, signal=sig, source="connector")

    def fault(self, pid: int, text: str) -> None:
        (self.root / "faults" / f"{pid}.log").write_text(text)

    def node_down(self, worker: str, pid: int, returncode: int | None, crash_item: str) -> None:
        self.crumb(
            CONTROLLER,
            "node-down",
            worker=worker,
            worker_pid=pid,
            error="Not properly terminated",
            returncode=returncode,
        )
        self.crumb(CONTROLLER, "crash-item", nodeid=crash_item, worker=worker)

    def xdist_run(self) -> None:
        self.process(CONTROLLER, 1, "controller")
        for pid, worker in ((GW0, "gw0"), (GW1, "gw1")):
            self.process(pid, CONTROLLER, "worker", worker)
            self.crumb(CONTROLLER, "node-ready", worker=worker, worker_pid=pid)


def _triage(bundle: Bundle) -> Triage:
    return analyze_bundle(bundle.root)


def _only(triage: Triage) -> Incident:
    assert len(triage.incidents) == 1, [(i.cause, i.summary) for i in triage.incidents]
    return triage.incidents[0]


@pytest.fixture
def xdist(tmp_path: Path) -> Bundle:
    bundle = Bundle(tmp_path / "b")
    bundle.xdist_run()
    return bundle


def test_worker_segfault_is_a_native_crash_of_its_test(xdist: Bundle) -> None:
    xdist.passed(GW0, "t.py::test_ok", "gw0")
    xdist.passed(GW0, "t.py::test_ok2", "gw0")
    xdist.passed(GW1, "t.py::test_other", "gw1")
    xdist.dies_in(GW0, "test_crash.py::test_segv", worker="gw0")
    xdist.fault(GW0, SEGV_DUMP)
    xdist.exit(GW0, sig="SIGSEGV")
    xdist.node_down("gw0", GW0, -11, "test_crash.py::test_segv")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.confidence, incident.signal, incident.exit_code) == (
        "native-crash",
        "high",
        "SIGSEGV",
        139,
    )
    assert (incident.worker, incident.pid, incident.test, incident.phase) == (
        "gw0",
        GW0,
        "test_crash.py::test_segv",
        "call",
    )
    assert incident.prior_tests == ["t.py::test_ok", "t.py::test_ok2"]
    assert [f.name for f in incident.stacks[0].frames][:2] == ["string_at", "test_segv"]
    assert incident.evidence[0].source == f"faults/{GW0}.log:1"
    assert incident.repro is not None and incident.repro.endswith(
        "-n 0 -- t.py::test_ok t.py::test_ok2 test_crash.py::test_segv"
    )


def test_fault_dump_alone_is_enough(xdist: Bundle) -> None:
    # No connector (no CAP_NET_ADMIN), no returncode from xdist: the dump still tells.
    xdist.dies_in(GW1, "test_crash.py::test_segv", worker="gw1")
    xdist.fault(GW1, SEGV_DUMP)
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.signal, incident.test) == (
        "native-crash",
        "SIGSEGV",
        "test_crash.py::test_segv",
    )


def test_signal_from_xdist_returncode_without_connector(xdist: Bundle) -> None:
    xdist.dies_in(GW1, "t.py::test_abort", worker="gw1")
    xdist.node_down("gw1", GW1, -6, "t.py::test_abort")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.signal, incident.exit_code) == ("native-crash", "SIGABRT", 134)


def test_teardown_phase(xdist: Bundle) -> None:
    xdist.dies_in(GW0, "t.py::test_fixture", phase="teardown", worker="gw0")
    xdist.exit(GW0, sig="SIGSEGV")
    assert _only(_triage(xdist)).phase == "teardown"


def test_sigkill_without_oom_evidence_is_an_external_kill(xdist: Bundle) -> None:
    xdist.dies_in(GW0, "t.py::test_slow", worker="gw0")
    xdist.exit(GW0, sig="SIGKILL")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.signal, incident.stacks) == ("external-kill", "SIGKILL", [])


def test_sigkill_with_a_kernel_oom_line_is_an_oom_kill(xdist: Bundle) -> None:
    xdist.dies_in(GW0, "t.py::test_big", worker="gw0")
    xdist.exit(GW0, sig="SIGKILL")
    line = f"Out of memory: Killed process {GW0} (python) total-vm:9000000kB"
    kill = {"pid": GW0, "ours": True, "line": line}
    (xdist.root / "system" / "oom.json").write_text(json.dumps({"kills": [kill]}))
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.confidence) == ("oom-kill", "high")
    assert any(line in e.excerpt for e in incident.evidence)


def test_exit_status_mid_test_is_an_unexpected_exit(xdist: Bundle) -> None:
    xdist.dies_in(GW1, "t.py::test_exits", worker="gw1")
    xdist.exit(GW1, code=3)
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.exit_code, incident.signal) == ("unexpected-exit", 3, None)


def test_workers_that_finish_cleanly_are_no_incident(xdist: Bundle) -> None:
    xdist.passed(GW0, "t.py::a", "gw0")
    xdist.passed(GW1, "t.py::b", "gw1")
    for pid in (GW0, GW1):
        xdist.crumb(pid, "session-finish", exitstatus=0)
        xdist.crumb(pid, "process-exit-clean")
        xdist.exit(pid, code=0)
    xdist.crumb(CONTROLLER, "session-finish", exitstatus=0)
    xdist.exit(CONTROLLER, code=0)
    triage = _triage(xdist)
    assert triage.incidents == []
    assert (triage.run.tests.passed, triage.run.tests.failed) == (2, 0)


def test_internalerror_after_a_crash_is_secondary_with_the_714_ref(xdist: Bundle) -> None:
    xdist.dies_in(GW1, "t.py::test_segv", worker="gw1")
    xdist.exit(GW1, sig="SIGSEGV")
    text = (
        'INTERNALERROR>   File "/x/xdist/scheduler/loadscope.py", line 275, in _assign_work_unit\n'
        "INTERNALERROR>     worker_collection = self.registered_collections[node]\n"
        "INTERNALERROR> KeyError: <WorkerController gw1>\n"
    )
    xdist.crumb(CONTROLLER, "internalerror", text=text)
    incident = _only(_triage(xdist))
    assert incident.cause == "native-crash"
    assert [(s.cause, s.ref) for s in incident.secondary] == [("xdist-internal", XDIST_714)]


def test_internalerror_alone_is_primary(xdist: Bundle) -> None:
    xdist.crumb(CONTROLLER, "internalerror", text="INTERNALERROR> KeyError: <WorkerController gw0>")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.confidence, incident.extra.get("ref")) == (
        "xdist-internal",
        "high",
        XDIST_714,
    )


def test_other_internalerror_in_xdist_has_no_714_ref(xdist: Bundle) -> None:
    text = (
        "Traceback (most recent call last):\n"
        '  File "/x/xdist/scheduler/load.py", line 151, in mark_test_complete\n'
        "    self.node2pending[node].remove(item_index)\n"
        "ValueError: list.remove(x): x not in list\n"
    )
    xdist.crumb(CONTROLLER, "internalerror", text=text)
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.extra.get("ref")) == ("xdist-internal", None)
    assert "ValueError: list.remove(x): x not in list in load mark_test_complete" in (
        incident.summary
    )


def test_internalerror_in_a_plugin_is_a_python_exception_as_in_a_log(xdist: Bundle) -> None:
    # The same rule as `forensics analyze` applies to the printed INTERNALERROR: where the
    # traceback ends decides whose error it is.
    text = (
        "Traceback (most recent call last):\n"
        '  File "/x/_pytest/main.py", line 270, in wrap_session\n'
        "    session.exitstatus = doit(config, session) or 0\n"
        '  File "/proj/conftest.py", line 12, in pytest_collection_modifyitems\n'
        '    raise ValueError("bad option")\n'
        "ValueError: bad option\n"
    )
    xdist.crumb(CONTROLLER, "internalerror", text=text)
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.extra.get("ref")) == ("python-exception", None)
    assert "ValueError: bad option in conftest pytest_collection_modifyitems" in incident.summary
    log = "\n".join(f"INTERNALERROR> {line}" for line in text.splitlines())
    (logged,) = correlate(scan_lines(log.splitlines(), "ci.log"))
    assert (logged.cause, logged.summary) == (incident.cause, incident.summary)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("AssertionError: assert 1 == 2", "python-exception"),
        ("RuntimeError: Event loop is closed", "python-exception"),
        ("ConnectionRefusedError: [Errno 111] Connection refused", "infrastructure"),
        ("requests.exceptions.ReadTimeout: HTTPSConnectionPool read timed out", "infrastructure"),
    ],
)
def test_failed_tests_are_python_exceptions_or_infrastructure(
    xdist: Bundle, message: str, cause: str
) -> None:
    xdist.passed(GW0, "t.py::test_ok", "gw0")
    xdist.failed(GW0, "t.py::test_fails", message, "gw0")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.test, incident.phase) == (cause, "t.py::test_fails", "call")
    assert incident.prior_tests == ["t.py::test_ok"]
    # The log of the same run says the same: one rule set (analyze/classify.py).
    (logged,) = correlate(scan_lines([f"FAILED t.py::test_fails - {message}"], "ci.log"))
    assert (logged.cause, logged.test, logged.summary) == (cause, incident.test, incident.summary)


def test_child_process_crash_blames_the_test_and_its_failure_is_secondary(xdist: Bundle) -> None:
    xdist.passed(GW0, "t.py::test_before", "gw0")
    xdist.crumb(GW0, "test-start", nodeid="t.py::test_pool")
    xdist.event("proc-start", xdist.t, pid=CHILD, ppid=GW0, argv=["python", "-c"])
    xdist.crumb(
        CHILD,
        "process-start",
        ppid=GW0,
        argv=["-c"],
        how="fork",
        parent_test="t.py::test_pool",
        parent_worker="gw0",
    )
    xdist.fault(CHILD, SEGV_DUMP)
    xdist.exit(CHILD, sig="SIGSEGV")
    xdist.crumb(
        GW0,
        "phase-end",
        nodeid="t.py::test_pool",
        phase="call",
        outcome="failed",
        message="assert -11 == 0",
    )
    xdist.crumb(GW0, "test-end", nodeid="t.py::test_pool")
    xdist.passed(GW0, "t.py::test_after", "gw0")
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.pid, incident.test, incident.worker) == (
        "native-crash",
        CHILD,
        "t.py::test_pool",
        "gw0",
    )
    assert incident.extra["in_child_process"] is True
    assert [s.cause for s in incident.secondary] == ["python-exception"]
    # What the worker ran before the test that started the child; not what it ran after.
    assert incident.prior_tests == ["t.py::test_before"]
    assert incident.repro is not None
    assert incident.repro.endswith("-n 0 -- t.py::test_before t.py::test_pool")


def test_healthy_tests_around_a_crash_are_never_blamed(xdist: Bundle) -> None:
    for n in range(5):
        xdist.passed(GW0 if n % 2 else GW1, f"t.py::test_ok[{n}]", "gw0" if n % 2 else "gw1")
    xdist.dies_in(GW0, "t.py::test_segv", worker="gw0")
    xdist.exit(GW0, sig="SIGSEGV")
    triage = _triage(xdist)
    assert {i.test for i in triage.incidents} == {"t.py::test_segv"}


def test_a_test_whose_process_died_mid_call_is_not_counted_passed(xdist: Bundle) -> None:
    xdist.passed(GW0, "t.py::test_ok", "gw0")
    xdist.dies_in(GW1, "t.py::test_segv", worker="gw1")  # its setup report said "passed"
    xdist.exit(GW1, sig="SIGSEGV")
    assert _triage(xdist).run.tests.passed == 1


def test_supervisor_killed_mid_run(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path / "b", finished=False)
    bundle.xdist_run()
    bundle.passed(GW0, "t.py::a", "gw0")
    bundle.crumb(GW1, "test-start", nodeid="t.py::sleeps")
    with open(bundle.root / "events.jsonl", "ab") as fh:
        fh.write(b'{"t": 1700000005.0, "kind": "proc-st')  # cut mid-line by SIGKILL
    triage = _triage(bundle)
    assert triage.run.exit_code is None and triage.run.complete is False
    assert any("did not finish" in note for note in triage.notes)
    assert triage.run.tests.passed == 1


def test_plain_script_death(tmp_path: Path) -> None:
    bundle = Bundle(tmp_path / "b", exit_status=139)
    bundle.event("proc-start", 0.1, pid=500, ppid=1, argv=["python", "segv.py"])
    bundle.crumb(
        500,
        "process-start",
        ppid=1,
        argv=["segv.py"],
        executable="/usr/bin/python3",
        cwd="/work dir",
        how="exec",
    )
    bundle.fault(500, SEGV_DUMP)
    bundle.event("proc-exit", 1.0, pid=500, exit_code=None, signal="SIGSEGV", source="reaped")
    incident = _only(_triage(bundle))
    assert (incident.cause, incident.signal, incident.test, incident.worker) == (
        "native-crash",
        "SIGSEGV",
        None,
        None,
    )
    # The repro re-runs the command as it was started, interpreter included.
    assert incident.repro == "cd '/work dir' && /usr/bin/python3 segv.py"


def test_hostile_records_are_ignored(xdist: Bundle) -> None:
    with open(xdist.root / "workers" / f"{GW0}.jsonl", "ab") as fh:
        fh.write(b'{"kind": "test-start", "nodeid": ["x"], "t": "later"}\n')
        fh.write(b'{"kind": "phase-end", "nodeid": null, "outcome": 5}\n')
        fh.write(b'{"kind": "session-start", "role": {"a": 1}, "args": "rm -rf /"}\n')
        fh.write(b"[1,2]\n\xff\xfe\n")
    with open(xdist.root / "events.jsonl", "ab") as fh:
        fh.write(b'{"kind": "proc-exit", "pid": true, "signal": 11}\n')
        fh.write(b'{"kind": "proc-exit", "pid": 999, "signal": ["SIGSEGV"]}\n')
    (xdist.root / "faults" / "notapid.log").write_text(SEGV_DUMP)
    triage = _triage(xdist)
    assert triage.incidents == []


def _surrounding(bundle: Bundle, before: int, after: int, limit: int | None = 400 << 20) -> None:
    """system/cgroup.json as MemoryWatch writes it when no run cgroup could be made."""

    def chain(oom_kill: int) -> list[dict[str, Any]]:
        return [
            {"version": 2, "path": "/user.slice/ci", "oom_kill": oom_kill, "limit_bytes": limit}
        ]

    cgroup = {"run": None, "surrounding": {"start": chain(before), "end": chain(after)}}
    (bundle.root / "system" / "cgroup.json").write_text(json.dumps(cgroup))


def test_sigkill_with_a_rising_surrounding_oom_counter_is_an_oom_kill(xdist: Bundle) -> None:
    # An ordinary user: no run cgroup, no kernel log; the surrounding cgroup counted the kill.
    xdist.dies_in(GW0, "t.py::test_big", worker="gw0")
    xdist.exit(GW0, sig="SIGKILL")
    _surrounding(xdist, before=3, after=4)
    incident = _only(_triage(xdist))
    assert (incident.cause, incident.confidence) == ("oom-kill", "medium")
    assert any("rose from 3 to 4" in e.excerpt for e in incident.evidence)
    assert incident.memory is not None and incident.memory["limit_bytes"] == 400 << 20


def test_sigkill_with_a_steady_surrounding_oom_counter_stays_an_external_kill(
    xdist: Bundle,
) -> None:
    xdist.dies_in(GW0, "t.py::test_slow", worker="gw0")
    xdist.exit(GW0, sig="SIGKILL")
    _surrounding(xdist, before=4, after=4)
    assert _only(_triage(xdist)).cause == "external-kill"


def test_our_own_sigkill_is_not_an_oom_kill_even_when_the_counter_rose(xdist: Bundle) -> None:
    xdist.dies_in(GW0, "t.py::test_slow", worker="gw0")
    xdist.event("signal-sent", xdist.t, signal="SIGKILL", pids=[GW0], reason="timeout")
    xdist.exit(GW0, sig="SIGKILL")
    _surrounding(xdist, before=0, after=1)
    assert _only(_triage(xdist)).cause == "external-kill"


def test_a_failure_on_another_worker_before_a_crash_is_its_own(xdist: Bundle) -> None:
    # An EOFError reads like a consequence of a dead process; the bundle knows it happened on
    # another worker before the crash, so it is not the crash's.
    xdist.failed(GW1, "t.py::test_reads_stdin", "EOFError: EOF when reading a line", "gw1")
    xdist.passed(GW1, "t.py::test_ok", "gw1")
    xdist.dies_in(GW0, "test_crash.py::test_segv", worker="gw0")
    xdist.fault(GW0, SEGV_DUMP)
    xdist.exit(GW0, sig="SIGSEGV")
    xdist.node_down("gw0", GW0, -11, "test_crash.py::test_segv")
    incidents = _triage(xdist).incidents
    assert sorted(i.cause for i in incidents) == ["native-crash", "python-exception"]
    assert all(not i.secondary for i in incidents)


def test_internalerror_after_a_hang_forensics_ended_is_its_secondary(xdist: Bundle) -> None:
    xdist.passed(GW1, "t.py::test_ok", "gw1")
    xdist.dies_in(GW0, "t.py::test_stuck", worker="gw0")
    xdist.event(
        "stall",
        xdist.t,
        pid=GW0,
        test="t.py::test_stuck",
        worker="gw0",
        idle_s=60.0,
        limit_s=60.0,
        phase="call",
    )
    xdist.t += 1
    xdist.exit(GW0, sig="SIGKILL")
    xdist.node_down("gw0", GW0, -9, "t.py::test_stuck")
    text = (
        "Traceback (most recent call last):\n"
        '  File "/venv/lib/python3.11/site-packages/xdist/dsession.py", line 190, in '
        "worker_workerfinished\n"
        "    self.sched.remove_node(node)\n"
        "KeyError: <WorkerController gw0>\n"
    )
    xdist.crumb(CONTROLLER, "internalerror", text=text)
    incident = _only(_triage(xdist))
    assert incident.cause == "hang"
    assert [(s.cause, s.ref) for s in incident.secondary] == [("xdist-internal", XDIST_714)]


def test_a_hung_tests_own_failure_after_a_timer_dump_stays_an_incident() -> None:
    # faulthandler's dump_traceback_later dumps and lets the test go on: its later assertion
    # is its own failure, and an EOFError elsewhere has no dead process to follow from.
    log = FIXTURES / "synthetic_fh_timer_then_failures.log"
    incidents = correlate(scan_lines(log.read_text().splitlines(), str(log)))
    assert sorted((i.cause, i.test) for i in incidents) == [
        ("hang", "tests/test_a.py::test_slow"),
        ("python-exception", "tests/test_a.py::test_other"),
        ("python-exception", "tests/test_a.py::test_slow"),
    ]
