"""The triage of each fixture log: primary cause, worker, test, signal, consequences secondary."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs
from forensics.model import Incident

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _primary(name: str) -> Incident:
    triage = analyze_logs([str(LOGS / name)])
    assert triage.incidents, f"no incident for {name}"
    return triage.incidents[0]


@pytest.mark.parametrize(
    ("name", "cause", "worker", "test", "signal"),
    [
        (
            "story001_dynamo_sigabrt.log",
            "native-crash",
            "gw6",
            "tests/router/test_router_e2e_with_mockers.py::test_kv_push_router_bindings[True-tcp]",
            "SIGABRT",
        ),
        (
            "story000_robin_keyerror_714.log",
            "native-crash",
            "gw8",
            "tests/unit/test_column_case_variations.py::TestCaseVariations::test_select_mixed_case",
            None,
        ),
        (
            "gha_xdist_crashes.log",
            "native-crash",
            "gw1",
            "tests/test_crash.py::test_segv",
            "SIGSEGV",
        ),
        (
            "jenkins_serial_segv.log",
            "native-crash",
            None,
            "tests/test_crash.py::test_segv",
            "SIGSEGV",
        ),
        (
            "cpp_terminate_worker.log",
            "native-crash",
            "gw1",
            "tests/gpu/test_device.py::test_select_device[1]",
            "SIGABRT",
        ),
        (
            "oom_worker_killed.log",
            "oom-kill",
            "gw2",
            "tests/test_big.py::test_huge_allocation",
            "SIGKILL",
        ),
        # The test is the file of the dots line the kill cut short; a SIGKILL nothing announced
        # (no cancel, no timeout tool, no SIGTERM first) reads as the OOM killer, inferred.
        ("external_killed_137.log", "oom-kill", None, "tests/test_db.py", "SIGKILL"),
        ("hang_timeout_thread.log", "hang", None, "tests/test_crash.py::test_hang", None),
        (
            "story001_teardown_hang_cancelled.log",
            "hang",
            "gw3",
            "tests/serve/test_sglang.py::test_sglang_kv_router_basic[tcp]",
            None,
        ),
        ("xdist_714_without_crash.log", "xdist-internal", None, None, None),
        (
            "story001_hf_infra.log",
            "infrastructure",
            "gw1",
            "tests/router/test_router_e2e_with_mockers.py::test_mocker_two_kv_router[tcp]",
            None,
        ),
        (
            "story003_dispatcherd_run1.log",
            "python-exception",
            None,
            "tests/unit/service/test_pool.py::"
            "test_read_results_forever_exits_after_process_manager_shutdown",
            None,
        ),
    ],
)
def test_primary_cause(
    name: str, cause: str, worker: str | None, test: str | None, signal: str | None
) -> None:
    incident = _primary(name)
    assert (incident.cause, incident.worker, incident.test, incident.signal) == (
        cause,
        worker,
        test,
        signal,
    )
    assert incident.evidence and all(":" in e.source for e in incident.evidence)


def test_story000_every_dead_worker_and_the_keyerror_as_secondary() -> None:
    triage = analyze_logs([str(LOGS / "story000_robin_keyerror_714.log")])
    assert [i.worker for i in triage.incidents] == ["gw8", "gw10", "gw11"]
    assert all(i.cause == "native-crash" for i in triage.incidents)
    secondary = [s for i in triage.incidents for s in i.secondary]
    assert len(secondary) == 1
    assert secondary[0].cause == "xdist-internal"
    assert secondary[0].ref == "pytest-dev/pytest-xdist#714"
    assert "KeyError: <WorkerController gw14>" in secondary[0].summary
    assert "_assign_work_unit" in secondary[0].summary
    assert triage.run.tests.failed == 3 and triage.run.exit_code == 3


def test_snippets_pasted_into_issues() -> None:
    # The lines users paste into an issue, as in the stories, without the rest of the log.
    triage = analyze_logs([str(LOGS / "pasted_story000_snippet.log")])
    assert [(i.cause, i.worker) for i in triage.incidents] == [
        ("native-crash", "gw8"),
        ("native-crash", "gw10"),
        ("native-crash", "gw11"),
    ]
    (secondary,) = [s for i in triage.incidents for s in i.secondary]
    assert (secondary.cause, secondary.ref) == ("xdist-internal", "pytest-dev/pytest-xdist#714")
    incident = _primary("pasted_story001_snippet.log")
    assert (incident.cause, incident.signal, incident.worker) == ("native-crash", "SIGABRT", "gw6")
    assert incident.test == (
        "tests/router/test_router_e2e_with_mockers.py::test_kv_push_router_bindings[True-tcp]"
    )


def test_xdist_internal_is_never_primary_next_to_a_crash() -> None:
    for path in LOGS.glob("*.log"):
        triage = analyze_logs([str(path)])
        crashed = any(i.cause in ("native-crash", "oom-kill") for i in triage.incidents)
        if crashed:
            assert all(i.cause != "xdist-internal" for i in triage.incidents), path.name


def test_story001_crash_carries_the_rust_panic_and_its_stack() -> None:
    incident = _primary("story001_dynamo_sigabrt.log")
    assert incident.confidence == "high"
    assert "Rust panic" in incident.summary
    assert incident.native_library == "tokio-1.43.0"
    current = incident.stacks[0]
    assert current.state == "current"
    assert [f.name for f in current.frames[:2]] == ["__init__", "test_kv_push_router_bindings"]
    assert incident.phase == "call"


def test_xdist_mixed_run_finds_every_kind() -> None:
    triage = analyze_logs([str(LOGS / "gha_xdist_crashes.log")])
    by_test = {i.test: i for i in triage.incidents}
    assert by_test["tests/test_crash.py::test_abort"].signal == "SIGABRT"
    assert by_test["tests/test_crash.py::test_abort"].worker == "gw2"
    assert by_test["tests/test_crash.py::test_hang"].cause == "hang"
    queue = by_test["tests/test_crash.py::test_queue_closed"]
    assert queue.cause == "python-exception"
    assert queue.signature == (
        "ValueError: Queue <multiprocessing.queues.Queue object at <addr>> is closed"
    )
    # The timed-out test is a hang only, not also a Python failure.
    assert sum(1 for i in triage.incidents if i.test == "tests/test_crash.py::test_hang") == 1
    assert (triage.run.tests.passed, triage.run.tests.failed) == (3, 7)
    assert triage.run.exit_code == 1


def test_real_spliced_dumps_keep_their_signals() -> None:
    # Captured from a real `pytest -n 2` run: two workers' dumps spliced mid-line.
    triage = analyze_logs([str(LOGS / "real_xdist_spliced_faults.log")])
    assert {(i.worker, i.test, i.signal) for i in triage.incidents} == {
        ("gw0", "test_boom.py::test_abort", "SIGABRT"),
        ("gw1", "test_boom.py::test_segv", "SIGSEGV"),
    }


def test_token_spliced_dumps_after_the_reports_pair_in_order() -> None:
    # Real capture: stdout then stderr, and two dumps interleaved token by token.
    triage = analyze_logs([str(LOGS / "real_xdist_token_spliced_stderr_last.log")])
    assert {(i.worker, i.test, i.signal, i.confidence) for i in triage.incidents} == {
        ("gw0", "test_boom.py::test_abort", "SIGABRT", "medium"),
        ("gw1", "test_boom.py::test_segv", "SIGSEGV", "medium"),
    }


def test_interleaved_fault_dumps_go_to_their_own_workers() -> None:
    triage = analyze_logs([str(LOGS / "interleaved_two_segfaults.log")])
    pairs = {(i.worker, i.test, i.signal) for i in triage.incidents}
    assert pairs == {
        ("gw0", "tests/test_fast.py::test_compute", "SIGSEGV"),
        ("gw1", "tests/test_io.py::test_load", "SIGSEGV"),
    }


def test_consequence_failure_is_secondary() -> None:
    text = "\n".join(
        [
            "Fatal Python error: Segmentation fault",
            "",
            "Current thread 0x00007f0000000001 (most recent call first):",
            '  File "/w/tests/test_pool.py", line 3 in test_pool',
            "[gw0] node down: Not properly terminated",
            "worker 'gw0' crashed while running 'tests/test_pool.py::test_pool'",
            "FAILED tests/test_other.py::test_after - "
            "concurrent.futures.process.BrokenProcessPool: A process in the pool"
            " was terminated abruptly",
            "FAILED tests/test_other.py::test_loop - RuntimeError: Event loop is closed",
        ]
    )
    from forensics.analyze.logs import scan_lines
    from forensics.analyze.logs.correlate import correlate

    incidents = correlate(scan_lines(text.splitlines(), "x.log"))
    # A closed event loop is the test's own bug (issue 14), not the crash's consequence.
    assert [(i.cause, i.test) for i in incidents] == [
        ("native-crash", "tests/test_pool.py::test_pool"),
        ("python-exception", "tests/test_other.py::test_loop"),
    ]
    assert {s.cause for s in incidents[0].secondary} == {"python-exception"}
    assert len(incidents[0].secondary) == 1


def test_signatures_across_logs_give_a_flake_table() -> None:
    paths = [str(LOGS / f"story003_dispatcherd_run{n}.log") for n in (1, 2, 3)]
    triage = analyze_logs(paths)
    rows = [r for r in triage.signatures if r["cause"] == "python-exception"]
    assert len(rows) == 1
    assert rows[0]["count"] == 2
    assert rows[0]["logs"] == {paths[0]: 1, paths[1]: 1}
    assert triage.run.tests.passed == 211 + 211 + 212


def test_clean_log_has_no_incident() -> None:
    triage = analyze_logs([str(LOGS / "story003_dispatcherd_run3.log")])
    assert triage.incidents == []
    assert triage.source.kind == "log"


@pytest.mark.parametrize(
    ("lines", "cause", "signal", "test"),
    [
        (
            [
                "Fatal Python error: PyThreadState_Get: the function must be called with the GIL"
                " held, but the GIL is released (the current Python thread state is NULL)",
                "Python runtime state: initialized",
                "",
                "Current thread 0x00007f1c2d6f3740 (most recent call first):",
                '  File "/w/tests/test_gil.py", line 5 in test_gil',
                "Aborted (core dumped)",
            ],
            "native-crash",
            "SIGABRT",
            "/w/tests/test_gil.py::test_gil",
        ),
        (
            [
                "Windows fatal exception: access violation",
                "",
                "Current thread 0x00001234 (most recent call first):",
                '  File "C:\\a\\tests\\test_w.py", line 3 in test_w',
            ],
            "native-crash",
            "SIGSEGV",
            "C:\\a\\tests\\test_w.py::test_w",
        ),
        (
            [
                "Timeout (0:05:00)!",
                "Thread 0x00007f1c2d6f3740 (most recent call first):",
                '  File "/usr/lib/python3.11/threading.py", line 320 in wait',
                '  File "/w/tests/test_h.py", line 9 in test_h',
            ],
            "hang",
            None,
            "/w/tests/test_h.py::test_h",
        ),
        (
            [
                "[gw1] [ 45%] PASSED tests/test_a.py::test_a",
                "##[error]The job running on runner GitHub Actions 3 has exceeded the maximum"
                " execution time of 360 minutes.",
            ],
            "hang",
            None,
            None,
        ),
        (
            ["tests-1  | collected 10 items", "tests-1 exited with code 137"],
            "oom-kill",
            "SIGKILL",
            None,
        ),
        (["Segmentation fault (core dumped)"], "native-crash", "SIGSEGV", None),
    ],
)
def test_single_process_endings(
    lines: list[str], cause: str, signal: str | None, test: str | None
) -> None:
    from forensics.analyze.logs import scan_lines
    from forensics.analyze.logs.correlate import correlate

    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.signal, incident.test) == (cause, signal, test)


def test_timeout_thread_method_under_xdist_is_a_hang_with_xdist_secondary() -> None:
    from forensics.analyze.logs import scan_lines
    from forensics.analyze.logs.correlate import correlate

    lines = [
        "+" * 35 + " Timeout " + "+" * 35,
        "~" * 20 + " Stack of MainThread (140543615277952) " + "~" * 20,
        '  File "/w/tests/test_x.py", line 3, in test_slow',
        "    time.sleep(500)",
        "+" * 35 + " Timeout " + "+" * 35,
        "[gw0] node down: Not properly terminated",
        "worker 'gw0' crashed while running 'tests/test_x.py::test_slow'",
        "INTERNALERROR> KeyError: <WorkerController gw0>",
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.worker, incident.test) == (
        "hang",
        "gw0",
        "tests/test_x.py::test_slow",
    )
    assert incident.stacks[0].frames[0].name == "test_slow"
    assert [(s.cause, s.ref) for s in incident.secondary] == [
        ("xdist-internal", "pytest-dev/pytest-xdist#714")
    ]


def test_dead_worker_with_an_unannounced_sigkill_is_an_inferred_oom_kill() -> None:
    from forensics.analyze.logs import scan_lines
    from forensics.analyze.logs.correlate import correlate

    lines = [
        "[gw1] node down: Not properly terminated",
        "Replacing crashed slave gw1",  # pytest-xdist < 1.22 wording
        "slave 'gw1' crashed while running 'tests/test_a.py::test_b'",
        "##[error]Process completed with exit code 137.",
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.confidence, incident.signal, incident.worker) == (
        "oom-kill",
        "low",
        "SIGKILL",
        "gw1",
    )
    assert incident.test == "tests/test_a.py::test_b"
    verdicts = {h["cause"]: h["verdict"] for h in incident.extra["differential"]}
    assert verdicts["oom-kill"] == verdicts["external-kill"] == "possible"


@pytest.mark.parametrize(
    "announce",
    [
        "##[error]The operation was canceled.",  # the CI cancelled the job
        "bash: line 1:   812 Terminated              python -m pytest tests/",  # SIGTERM first
    ],
)
def test_dead_worker_with_an_announced_sigkill_stays_an_external_kill(announce: str) -> None:
    from forensics.analyze.logs import scan_lines
    from forensics.analyze.logs.correlate import correlate

    lines = [
        "[gw1] node down: Not properly terminated",
        "slave 'gw1' crashed while running 'tests/test_a.py::test_b'",
        announce,
        "##[error]Process completed with exit code 137.",
    ]
    incidents = correlate(scan_lines(lines, "x.log"))
    assert incidents[0].cause == "external-kill"
