"""False-alarm probes for the death lines of raw logs: a passing suite yields no incident.

The ``synthetic_*.log`` fixtures used here are crafted, not real: a review of ``forensics
analyze`` wrote them to probe false alarms (a death word printed by a test that passed, a
Windows status in a parametrized test id, a CI script killing its own background server, two
crashes in one log, a panic PyO3 caught).  The real excerpts that must still be found are in
tests/unit/test_logs_deaths.py and the labelled corpus (tests/corpus).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs.correlate import correlate
from forensics.analyze.logs.death_lines import runs_tests
from forensics.model import Incident

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"

# What a test may print on purpose (a child it crashed, an enum it compares, a message it checks).
PHRASES = {
    "killed": "Killed",
    "terminated": "Terminated",
    "aborted": "Aborted",
    "winstatus": "child exited with code 3221225477",
    "winhex": "return code 0xC0000005 expected",
    "enum_dot": "status = State.Terminated",
    "abortedx": "progress: xxxxAborted",
    "cxx": "libc++abi: terminating due to uncaught exception of type std::runtime_error: x",
    "rust": "thread panicked while panicking",
    "mac": "Exception Type:        EXC_BAD_ACCESS (SIGSEGV)",
    "segv": "Segmentation fault (core dumped)",
    "fish": "fish: 'x' terminated by signal SIGABRT (Abort)",
    "oom": "Out of memory: Killed process 1234 (python) total-vm:100kB",
    "cargo": "Caused by: process didn't exit successfully: `x` (signal: 11, SIGSEGV: invalid"
    " memory reference)",
    "ns": "Terminating app due to uncaught exception 'NSFoo', reason: 'x'",
    "objc": "objc[123]: +[NSFoo initialize] may have been in progress in another thread when"
    " fork() was called.",
    "fatal": "Fatal Python error: Segmentation fault",
}
HEADER = [
    "============================= test session starts ==============================",
    "platform linux -- Python 3.11.4, pytest-7.4.0, pluggy-1.2.0",
    "collected 3 items",
    "",
]


def _incidents(lines: list[str]) -> list[Incident]:
    return correlate(scan_lines(lines, "x.log"))


def _file(name: str) -> list[Incident]:
    return analyze_logs([str(LOGS / name)]).incidents


def _test_printed(phrase: str, result: str, summary: str | None) -> list[str]:
    lines = [*HEADER, "tests/test_proc.py::test_a ", *phrase.split("\n")]
    if result:
        lines += [f"{result}                                                     [ 33%]"]
        lines += ["tests/test_proc.py::test_b PASSED                            [ 66%]"]
        lines += ["tests/test_proc.py::test_c FAILED                            [100%]"]
    if summary:
        lines += ["", f"============================== {summary} in 1.23s ===="]
    return lines


@pytest.mark.parametrize("phrase", PHRASES.values(), ids=PHRASES.keys())
def test_a_death_word_in_a_passing_suite_is_no_incident(phrase: str) -> None:
    assert _incidents(_test_printed(phrase, "PASSED", "3 passed")) == []


@pytest.mark.parametrize("phrase", PHRASES.values(), ids=PHRASES.keys())
def test_a_death_word_in_a_test_that_passed_is_no_incident(phrase: str) -> None:
    # Another test failed, so the summary is not clean: the test's own PASSED settles it.
    lines = _test_printed(phrase, "PASSED", None)
    lines += ["FAILED tests/test_proc.py::test_c - AssertionError: assert 1 == 2"]
    lines += ["========================= 1 failed, 2 passed in 1.23s =========================="]
    assert [i.cause for i in _incidents(lines)] == ["python-exception"]


@pytest.mark.parametrize("name", ["aborted", "segv", "cxx", "fatal", "mac", "cargo"])
def test_the_same_death_that_ends_the_run_is_still_found(name: str) -> None:
    # The probe's counterpart: no result and no summary after it, the run died there.
    incidents = _incidents(_test_printed(PHRASES[name], "", None))
    assert [i.cause for i in incidents] == ["native-crash"]


def test_a_worker_lost_before_a_clean_summary_keeps_its_dump() -> None:
    # pytest-rerunfailures under xdist: the rerun passed, the worker's crash still happened.
    lines = [
        *HEADER,
        "Fatal Python error: Segmentation fault",
        "",
        "Current thread 0x00007f0000000001 (most recent call first):",
        '  File "/src/tests/test_a.py", line 9 in test_one',
        "[gw0] node down: Not properly terminated",
        "replacing crashed worker gw0",
        "=================== 3 passed, 1 rerun in 1.23s ===================",
    ]
    incidents = _incidents(lines)
    assert [(i.cause, i.signal) for i in incidents] == [("native-crash", "SIGSEGV")]


def test_deaths_settled_by_their_tests_and_then_by_the_session() -> None:
    lines = _test_printed(PHRASES["segv"], "PASSED", None)
    lines += ["tests/test_proc.py::test_d ", "Aborted", "PASSED     [ 80%]"]
    lines += ["tests/test_proc.py::test_e ", "Killed", "XFAIL      [ 90%]"]
    lines += ["Bus error", "=================== 5 passed, 1 xfailed in 1.23s ==================="]
    scan = scan_lines(lines, "x.log")
    assert scan.kills == [] and correlate(scan) == []
    assert len([n for n in scan.notes if "not counted as a death" in n]) == 4


def test_the_review_probe_log_of_a_passing_suite_is_clean() -> None:
    triage = analyze_logs([str(LOGS / "synthetic_normal.log")])
    assert triage.incidents == []
    assert any("not counted as a death" in note for note in triage.notes)


@pytest.mark.parametrize(
    "text", ["status = State.Terminated", "progress: xxxxAborted", "see job.Aborted"]
)
def test_a_death_word_glued_to_other_text_is_no_death(text: str) -> None:
    assert scan_lines([text], "x.log").kills == []


def test_the_word_glued_to_a_dots_line_is_still_a_death() -> None:
    scan = scan_lines(["tests/test_linalg.py ......Aborted (core dumped)"], "x.log")
    assert [(k.signal, k.test) for k in scan.kills] == [("SIGABRT", "tests/test_linalg.py")]


def test_a_windows_status_in_a_parametrized_test_id_is_no_crash() -> None:
    assert [i.cause for i in _file("synthetic_win_param.log")] == ["python-exception"]
    lines = ["tests/test_win.py::test_status_name[3221225477] PASSED    [ 25%]"]
    assert scan_lines(lines, "x.log").kills == []
    assert scan_lines(["the code 0xC0000005 maps to EACCES"], "x.log").kills == []
    assert scan_lines(["app.exe exited with 0xC0000005"], "x.log").kills


def test_a_ci_script_killing_its_background_server_is_no_incident() -> None:
    triage = analyze_logs([str(LOGS / "synthetic_bgkill.log")])
    assert triage.incidents == []
    assert any("http.server" in note for note in triage.notes)


def test_a_process_listing_row_is_no_death() -> None:
    assert _incidents(["  12   Killed    worker-3"]) == []


def test_the_progress_a_shell_report_cut_short_makes_it_the_run_whatever_the_command() -> None:
    line = "test_native.py bash: line 91: 14806 Segmentation fault      ./helper"
    assert [k.test for k in scan_lines([line], "x.log").kills] == ["test_native.py"]


@pytest.mark.parametrize(
    ("cmd", "tests"),
    [
        ("pytest --json-report", True),
        ("(core dumped) py.test distributed -v -m", True),
        ("python3 -X faulthandler -m pytest", True),
        ("python run_all.py", True),
        ("./run-unit-tests.sh", True),
        ("make check", True),
        ("$CMD_P", True),
        ("python -m http.server 8000", False),
        ("redis-server --port 7777", False),
        ("(core dumped) ./helper --selftest", False),
        ("worker-3", False),
    ],
)
def test_which_commands_run_the_tests(cmd: str, tests: bool) -> None:
    assert runs_tests(cmd) is tests


def test_a_second_crash_is_its_own_incident() -> None:
    incidents = _file("synthetic_two.log")
    assert [(i.signal, i.test) for i in incidents] == [
        ("SIGSEGV", "/src/tests/test_a.py::test_one"),
        ("SIGABRT", "other_tests/test_b.py::test_three"),
    ]
    # The shell's "Segmentation fault (core dumped)" after the dump is the first death's.
    assert any("core dumped" in e.excerpt for e in incidents[0].evidence)


def test_a_panic_pyo3_caught_is_no_abort_for_a_later_sigabrt() -> None:
    assert _file("synthetic_pyo3.log") == []
    # Without the test's PASSED the panic stands, but the abort long after it is not its own.
    lines = [
        "tests/test_a.py::test_panics_into_python ",
        "thread '<unnamed>' panicked at src/lib.rs:10:5:",
        "index out of bounds: the len is 0 but the index is 0",
        "FAILED tests/test_a.py::test_panics_into_python - pyo3_runtime.PanicException: index",
        *[f"tests/test_b.py::test_{n} " for n in range(400)],
        "Aborted (core dumped)",
    ]
    causes = [(i.cause, i.summary) for i in _incidents(lines)]
    assert not any("after Rust panic" in summary for _cause, summary in causes)


def test_cargo_signal_death_names_no_exit_code() -> None:
    line = "error: process didn't exit successfully: `t` (signal: 11, SIGSEGV: invalid memory"
    (incident,) = _incidents([line + " reference)"])
    assert "exit code None" not in incident.summary
    assert incident.signal == "SIGSEGV" and "cargo test binary" in incident.summary
