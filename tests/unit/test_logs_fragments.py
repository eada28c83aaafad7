"""Failures an excerpt shows only in part (forensics/analyze/logs/fragments.py).

The corpus entries are real excerpts (tests/corpus/labels.json gives their threads).
"""

from __future__ import annotations

from pathlib import Path

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs.correlate import correlate

CORPUS = Path(__file__).parent.parent / "corpus" / "logs"
PANIC = "thread '<unnamed>' panicked at src/lib.rs:9:5:"


def _causes(lines: list[str]) -> list[str]:
    return [i.cause for i in correlate(scan_lines(lines, "x.log"))]


def test_the_end_of_a_failure_section_alone_is_a_python_exception() -> None:
    # From "Close <_UnixSelectorEventLoop ...>" to "E   RuntimeError: Event loop is closed".
    triage = analyze_logs([str(CORPUS / "096_session_loop_finalizer_closed_aiomisc.log")])
    (incident,) = triage.incidents
    assert incident.cause == "python-exception"
    assert "RuntimeError: Event loop is closed" in incident.summary


def test_a_rust_panic_alone_is_the_panic_exception_pyo3_raised() -> None:
    triage = analyze_logs([str(CORPUS / "097_pyo3_extension_panic_in_pytest.log")])
    (incident,) = triage.incidents
    assert incident.cause == "python-exception"
    assert "PanicException" in incident.summary and "predicate.rs:90:48" in incident.summary


def test_a_panic_that_aborts_is_still_a_crash() -> None:
    assert _causes([PANIC, "boom", "Aborted (core dumped)"])[:1] == ["native-crash"]
    assert _causes([PANIC, "boom", "thread panicked while panicking. aborting."])[:1] == [
        "native-crash"
    ]


def test_a_partial_failure_is_no_second_incident_beside_a_death() -> None:
    # The child's abort is the account of the run; its E line is what the parent saw of it.
    lines = ["tests/t.py Fatal Python error: Aborted", "", "E   RuntimeError: boom"]
    assert _causes(lines) == ["native-crash"]
