"""A fatal header a console hard-wrapped (forensics/analyze/logs/wraps.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs.correlate import correlate
from forensics.analyze.logs.wraps import wrapped_fatal

CORPUS = Path(__file__).parent.parent / "corpus" / "logs"


@pytest.mark.parametrize(
    ("before", "text", "joined"),
    [
        ("x.py ....Windows fatal exce", "ption: stack overflow", True),
        ("x.py ....Windows fatal exception", ": access violation", True),
        ("x.py ....W", "indows fatal exception: access violation", True),
        ("x.py ....Fatal Python er", "ror: Segmentation fault", True),
        # The tail fits a header the line before does not end with.
        ("x.py ....Windows fatal exce", "ror: Segmentation fault", False),
        ("some text", "ption: stack overflow", False),
        ("x.py ....Windows fatal exce", "reason: stack overflow", False),
    ],
)
def test_wrapped_fatal_joins_only_a_split_header(before: str, text: str, joined: bool) -> None:
    assert (wrapped_fatal(before, text) == before + text) is joined


def test_a_wrapped_windows_header_is_the_crash_of_the_test_running() -> None:
    # "tests\unit\test_JSONTestSuite.py ......Windows fatal exce" / "ption: stack overflow"
    triage = analyze_logs([str(CORPUS / "085_windows_stack_overflow_split_line.log")])
    incident = triage.incidents[0]
    assert (incident.cause, incident.signal) == ("native-crash", "SIGSEGV")
    assert incident.test == "tests\\unit\\test_JSONTestSuite.py::test_invalid"


def test_a_wrapped_linux_header_keeps_its_signal() -> None:
    lines = [
        "tests/test_a.py ....Fatal Python er",
        "ror: Segmentation fault",
        "",
        "Current thread 0x00007f00 (most recent call first):",
        '  File "/w/tests/test_a.py", line 3 in test_b',
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.signal, incident.test) == (
        "native-crash",
        "SIGSEGV",
        "tests/test_a.py::test_b",
    )
