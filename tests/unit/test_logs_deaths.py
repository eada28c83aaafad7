"""Deaths a shell, a CI runner or a runtime reports, on real excerpts from issue threads.

Each fixture is named in tests/fixtures/logs/REAL_DEATHS.md with the thread it comes from; a
``corpus:`` name is an entry of tests/corpus/labels.json, which gives its thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs.correlate import correlate
from forensics.model import Incident, Triage

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
# Excerpts that are also entries of the labelled corpus are read from there, not copied.
CORPUS = Path(__file__).parent.parent / "corpus" / "logs"


def _path(name: str) -> Path:
    if name.startswith("corpus:"):
        return CORPUS / name.removeprefix("corpus:")
    return LOGS / name


def _triage(name: str) -> Triage:
    return analyze_logs([str(_path(name))])


def _primary(name: str) -> Incident:
    triage = _triage(name)
    assert triage.incidents, f"no incident for {name}"
    return triage.incidents[0]


@pytest.mark.parametrize(
    ("name", "cause", "test", "signal"),
    [
        ("real_allo_aborted_core_dumped.log", "native-crash", "tests/test_linalg.py", "SIGABRT"),
        (
            "real_napari_gha_exit_134.log",
            "native-crash",
            "src/napari_psf_analysis/_tests/test_dock_widget.py::"
            "test_psf_analysis_widget_discard_point",
            "SIGABRT",
        ),
        # make's and a CI script's bare "Killed": the threads established memory.
        (
            "corpus:047_make_pytest_killed_memory.log",
            "oom-kill",
            "test/models/px/test_sfno.py::test_sfno_package[cpu]",
            "SIGKILL",
        ),
        ("corpus:054_travis_pytest_killed_4gb_test.log", "oom-kill", None, "SIGKILL"),
        # A shell's bare "Killed" with no cancel: the OOM killer, inferred (low confidence).
        (
            "real_setup_python_killed.log",
            "oom-kill",
            "test/test_performance.py::test_pandas",
            "SIGKILL",
        ),
        (
            "real_gaffer_verbose_aborted.log",
            "native-crash",
            "test/test_webchannel.py::test_basic_socket",
            "SIGABRT",
        ),
        ("corpus:020_pybind_uncaught_at_exit_fish.log", "native-crash", None, "SIGABRT"),
        # pytest -v printed the node id, the shell's report came on the same line.
        (
            "corpus:082_verbose_node_segfault_core_dumped.log",
            "native-crash",
            "pytest_steps/tests/test_all.py::test_run_all_tests[test_docs_example_with_harvest.py]",
            "SIGSEGV",
        ),
        (
            "real_pytorch_unittest_terminate.log",
            "native-crash",
            "test_utils.TestFFI.test_cpu",
            "SIGABRT",
        ),
        ("corpus:015_cargo_test_panicked_while_panicking.log", "native-crash", None, "SIGABRT"),
        ("corpus:018_windows_test_binary_access_violation.log", "native-crash", None, "SIGSEGV"),
        ("real_gcloudcpp_exit_access_violation.log", "native-crash", None, "SIGSEGV"),
        (
            "corpus:022_windows_access_violation_in_test.log",
            "native-crash",
            "test.py::test_bug",
            "SIGSEGV",
        ),
        (
            "real_solvcon_windows_heap_corruption.log",
            "native-crash",
            "..\\..\\..\\..\\tests\\test_pilot_2d.py::R2DWidgetWorldTC::test_add_2d_widget_created",
            "SIGABRT",
        ),
        (
            "corpus:044_objc_fork_safety_child_sigabrt.log",
            "native-crash",
            # The section's title and its location line "tests/test_multiprocess.py:26: ...".
            "tests/test_multiprocess.py::test_multiprocess_get",
            "SIGABRT",
        ),
        ("corpus:043_macos_xdist_worker_nsexception.log", "native-crash", None, "SIGABRT"),
        ("real_gpgsync_macos_crash_report.log", "native-crash", None, "SIGABRT"),
        ("real_debugpy_ns_exception.log", "native-crash", None, "SIGABRT"),
        # pytest -s printed the file, then the panic: the file is what is known of the test.
        ("real_rust_numpy_panic_abort.log", "native-crash", "tests/test_ext.py", "SIGABRT"),
        ("real_pyo3_panic_exception.log", "python-exception", "test_works", None),
        (
            "corpus:027_psycopg_suite_no_server.log",
            "infrastructure",
            "tests/test_connection.py::AutocommitTests::test_closed",
            None,
        ),
        ("real_testdriven_setup_refused.log", "infrastructure", None, None),
    ],
)
def test_primary_cause_test_and_signal(
    name: str, cause: str, test: str | None, signal: str | None
) -> None:
    incident = _primary(name)
    assert (incident.cause, incident.test, incident.signal) == (cause, test, signal)
    assert incident.evidence and all(":" in e.source for e in incident.evidence)


def test_progress_lines_count_the_tests_when_no_summary_line() -> None:
    tests = _triage("real_allo_aborted_core_dumped.log").run.tests
    assert (tests.passed, tests.failed, tests.skipped) == (76, 3, 1)


def test_gha_exit_code_134_is_sigabrt_and_the_shell_line_is_evidence() -> None:
    incident = _primary("real_napari_gha_exit_134.log")
    assert incident.exit_code == 134
    assert any("Aborted" in e.excerpt for e in incident.evidence)


def test_cxx_uncaught_exception_names_the_type() -> None:
    incident = _primary("corpus:020_pybind_uncaught_at_exit_fish.log")
    assert "pybind11::error_already_set" in incident.summary
    assert incident.native_library == "libc++abi"
    cpp = _primary("real_pytorch_unittest_terminate.log")
    assert "std::runtime_error" in cpp.summary and "expected 3D tensor" in cpp.summary
    # The runner's "Received signal: SIGIOT" traceback follows from the abort.
    causes = [i.cause for i in _triage("real_pytorch_unittest_terminate.log").incidents]
    assert causes == ["native-crash"]


def test_cargo_test_binary_death() -> None:
    incident = _primary("corpus:015_cargo_test_panicked_while_panicking.log")
    assert "panicked while panicking" in incident.summary
    assert any("signal: 6" in e.excerpt for e in incident.evidence)


def test_windows_access_violation_is_named() -> None:
    for name in (
        "corpus:018_windows_test_binary_access_violation.log",
        "real_gcloudcpp_exit_access_violation.log",
    ):
        incident = _primary(name)
        assert "access violation" in incident.summary, name
        assert incident.exit_code == -1073741819, name


def test_macos_crash_reports_name_the_exception_and_library() -> None:
    report = _primary("corpus:043_macos_xdist_worker_nsexception.log")
    assert "NSInternalInconsistencyException" in report.summary
    qt = _primary("real_gpgsync_macos_crash_report.log")
    assert qt.native_library == "QtCore"
    assert [f.name for f in qt.stacks[0].frames][:2] == ["__pthread_kill", "abort"]
    ns = _primary("real_debugpy_ns_exception.log")
    assert "NSInternalInconsistencyException" in ns.summary
    assert ns.native_library == "libqcocoa.dylib"


def test_objc_fork_safety_names_the_class() -> None:
    incident = _primary("corpus:044_objc_fork_safety_child_sigabrt.log")
    assert "__NSCFConstantString" in incident.summary and "fork" in incident.summary
    causes = [i.cause for i in _triage("corpus:044_objc_fork_safety_child_sigabrt.log").incidents]
    assert "python-exception" not in causes


def test_rust_panic_message_location_and_frames() -> None:
    incident = _primary("real_rust_numpy_panic_abort.log")
    assert "Should be a python error" in incident.summary
    assert "src/borrow/shared.rs:258:9" in incident.summary
    frames = incident.stacks[0].frames
    assert frames[0].native and "DisplayBacktrace" in frames[0].name


def test_pyo3_panic_exception_is_a_python_exception_from_a_rust_panic() -> None:
    incident = _primary("real_pyo3_panic_exception.log")
    assert "Rust panic" in incident.summary
    assert "not yet implemented" in incident.summary


def test_windows_status_code_of_a_fault_dump_is_named() -> None:
    incident = _primary("real_solvcon_windows_heap_corruption.log")
    assert "heap corruption" in incident.summary and "Windows fatal exception" in incident.summary
    assert incident.exit_code == -1073740940  # ninja's "Exit code 0xc0000374"
    assert _triage("real_solvcon_windows_heap_corruption.log").run.tests.passed == 7


def test_max_crashed_workers_is_never_primary() -> None:
    triage = _triage("corpus:001_xdist_os_exit_max_crashed.log")
    assert triage.incidents
    assert all(i.cause != "xdist-internal" for i in triage.incidents)
    assert all("aximum crashed" not in i.summary for i in triage.incidents)
    secondary = [s for i in triage.incidents for s in i.secondary]
    assert {s.cause for s in secondary} == {"xdist-internal"}
    assert any("aximum crashed workers reached: 4" in s.summary for s in secondary)


def test_max_crashed_workers_alone_still_means_dead_workers() -> None:
    # The end of the same real log, without the node-down lines before it.
    lines = _path("corpus:001_xdist_os_exit_max_crashed.log").read_text().splitlines()[-4:]
    incidents = correlate(scan_lines(lines, "x.log"))
    assert [i.cause for i in incidents] == ["native-crash"]
    assert {s.cause for s in incidents[0].secondary} == {"xdist-internal"}


def test_database_refusing_every_setup_is_infrastructure() -> None:
    triage = _triage("corpus:027_psycopg_suite_no_server.log")
    assert [i.cause for i in triage.incidents] == ["infrastructure"]
    assert triage.incidents[0].extra["count"] == 6


def test_event_loop_closed_alone_is_a_python_exception() -> None:
    lines = [
        "tests/test_client.py::test_get PASSED",
        "FAILED tests/test_client.py::test_close - RuntimeError: Event loop is closed",
        "========================= 1 failed, 1 passed in 0.52s =========================",
    ]
    incidents = correlate(scan_lines(lines, "x.log"))
    assert [(i.cause, i.test) for i in incidents] == [
        ("python-exception", "tests/test_client.py::test_close")
    ]


@pytest.mark.parametrize(
    "line",
    [
        "x" * 65000 + " Killed",
        "a: line 1: " * 6000 + "Killed",
        "make: *** [" * 6000 + "Aborted",
        "." * 65000 + "Aborted (core dumped)",
        "libc++abi: terminating with uncaught exception of type " + "a::" * 20000,
        "objc[1]: +[" + "X" * 60000 + " initialize] may have been in progress",
    ],
)
def test_hostile_death_lines_stay_linear(line: str) -> None:
    # Each pattern is anchored or gated so a 64 KiB line costs one pass, not one per position.
    began = time.process_time()
    correlate(scan_lines([line, line], "x.log"))
    assert time.process_time() - began < 2.0


def test_an_unannounced_sigkill_is_an_inferred_oom_kill_at_low_confidence() -> None:
    incident = _primary("corpus:047_make_pytest_killed_memory.log")
    assert incident.confidence == "low"
    assert "most often the kernel's OOM killer; no OOM line confirms it" in incident.summary
    verdicts = {h["cause"]: h["verdict"] for h in incident.extra["differential"]}
    assert verdicts["oom-kill"] == verdicts["external-kill"] == "possible"


def test_a_timeout_tool_on_the_killed_command_line_is_the_sender() -> None:
    lines = [
        "tests/test_a.py ....",
        "bash: line 1:  4021 Killed                  timeout -s KILL 600 pytest tests/",
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.signal) == ("external-kill", "SIGKILL")


@pytest.mark.parametrize(
    ("line", "test"),
    [
        ("tests/a.py::test_b[1-2] Segmentation fault (core dumped)", "tests/a.py::test_b[1-2]"),
        ("test_cpu (test_utils.TestFFI) ... Aborted (core dumped)", "test_utils.TestFFI.test_cpu"),
        # The word inside a sentence after a node id is no shell's report.
        ("tests/a.py::test_b the job was Killed by the user", None),
        ("tests/a.py::test_b PASSED", None),
    ],
)
def test_a_shell_death_after_the_running_tests_id_names_it(line: str, test: str | None) -> None:
    incidents = correlate(scan_lines([line], "x.log"))
    deaths = [(i.cause, i.test) for i in incidents if i.cause == "native-crash"]
    assert deaths == ([("native-crash", test)] if test else [])


def test_a_faulthandler_timeout_banner_after_the_dots_names_the_file() -> None:
    # pytest -o faulthandler_timeout=5: "trips\\tests\\test_websocket.py ....Timeout (0:00:05)!"
    incident = _primary("corpus:088_faulthandler_timeout_websocket_hang.log")
    assert (incident.cause, incident.test) == ("hang", "trips\\tests\\test_websocket.py")
    assert len(incident.stacks) == 2


def test_a_lost_github_runner_is_an_inferred_oom_kill_at_low_confidence() -> None:
    # "The hosted runner: ... lost communication with the server. ... starves it for CPU/Memory"
    incident = _primary("corpus:048_gha_runner_lost_communication_oom.log")
    assert (incident.cause, incident.confidence) == ("oom-kill", "low")
    verdicts = {h["cause"]: h["verdict"] for h in incident.extra["differential"]}
    assert verdicts["external-kill"] != "ruled out"


def test_a_plain_cancel_is_still_no_oom_kill() -> None:
    (incident,) = correlate(scan_lines(["##[error]The operation was canceled."], "x.log"))
    assert incident.cause == "external-kill"


def test_libpq_hint_on_its_own_e_line_is_a_database_not_up() -> None:
    # The excerpt starts at the message's second line: "E       \tTCP/IP connections on port 5432?"
    incident = _primary("corpus:095_pytest_django_db_fixture_refused.log")
    assert incident.cause == "infrastructure"


@pytest.mark.parametrize(
    ("line", "infra"),
    [
        # A message's continuation line, where an excerpt begins: pytest keeps libpq's tab.
        ("E       \tTCP/IP connections on port 5432?", True),
        ("E   AssertionError: expected port 5432", False),
    ],
)
def test_a_tab_led_e_line_is_read_for_infrastructure(line: str, infra: bool) -> None:
    incidents = correlate(scan_lines([line], "x.log"))
    assert any(i.cause == "infrastructure" for i in incidents) is infra


@pytest.mark.parametrize(
    ("after", "test"),
    [
        # pytest's stdout flushed after the shell's report: the cut-short dots line names the file.
        ("tests/test_io/test_reader.py ......", "tests/test_io/test_reader.py"),
        ("tests/test_io/test_reader.py ss", "tests/test_io/test_reader.py"),
        # A finished line (with its percentage), or a path alone, is not the running file.
        ("tests/test_io/test_reader.py ......                [ 40%]", None),
        ("tests/test_io/test_reader.py", None),
    ],
)
def test_the_dots_line_flushed_after_a_shell_death_names_its_file(
    after: str, test: str | None
) -> None:
    lines = ["/tmp/x.sh: line 3:  2823 Segmentation fault      (core dumped) pytest", after]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.test) == ("native-crash", test)
