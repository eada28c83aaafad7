"""CI decorations are stripped before matching; the xdist prefix is kept as the worker."""

from __future__ import annotations

import pytest

from forensics.analyze.logs.decorations import strip, timestamp


@pytest.mark.parametrize(
    ("raw", "text", "worker"),
    [
        (
            "2024-05-01T12:00:00.1234567Z [gw3] node down: Not properly terminated",
            "node down: Not properly terminated",
            "gw3",
        ),
        (
            "##[error]Process completed with exit code 137.",
            "Process completed with exit code 137.",
            None,
        ),
        ("2024-05-01T12:00:00.1234567Z ##[group]Run pytest -n 4", "Run pytest -n 4", None),
        ("section_start:1700000000:step_script\r\x1b[0KRunning pytest", "Running pytest", None),
        ("\x1b[31mFAILED\x1b[0m tests/a.py::t - x", "FAILED tests/a.py::t - x", None),
        ("[Pipeline] sh", "sh", None),
        ("12:00:01  Fatal Python error: Aborted", "Fatal Python error: Aborted", None),
        ("[2024-01-01T10:00:00.000Z] INTERNALERROR> KeyError", "INTERNALERROR> KeyError", None),
        ("2024-01-01T00:00:00.123456Z 00O INTERNALERROR> x", "INTERNALERROR> x", None),
        ("plain line\r\n", "plain line", None),
    ],
)
def test_strip(raw: str, text: str, worker: str | None) -> None:
    assert strip(raw) == (text, worker)


def test_timestamp_reads_github_seven_digit_fractions() -> None:
    a = timestamp("2026-02-05T17:49:18.1000000Z [gw3] FAILED x")
    b = timestamp("2026-02-05T18:47:36.1000000Z ##[error]The operation was canceled.")
    assert a is not None and b is not None
    assert round(b - a) == 58 * 60 + 18


def test_timestamp_absent() -> None:
    assert timestamp("no time here") is None
    assert timestamp("2026-99-99T99:99:99Z broken") is None
