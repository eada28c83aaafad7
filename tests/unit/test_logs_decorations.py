"""CI decorations are stripped before matching; the xdist prefix is kept as the worker."""

from __future__ import annotations

from pathlib import Path

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
        # A paste's indent: one leading tab; pytest's own indent (spaces) is kept.
        ("\tE       ValueError: x", "E       ValueError: x", None),
        ("\t    def test_works():", "    def test_works():", None),
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


def test_a_tab_indented_paste_reads_as_pytest_printed_it() -> None:
    """Corpus 053: every line of the pasted pytest output starts with a tab."""
    from forensics.analyze.logs import analyze_logs

    log = (
        Path(__file__).parent.parent / "corpus" / "logs" / "053_rust_panic_as_python_exception.log"
    )
    assert log.read_text().startswith("\t")
    (incident,) = analyze_logs([str(log)]).incidents
    assert incident.cause == "python-exception"
    assert "pyo3_runtime.PanicException" in incident.summary


# Jenkins' timestamper: the plain-text view (timestamps/?time=HH:mm:ss&appendLog) puts two
# spaces after the time; a copy of the HTML console keeps the one space of its '</b> '.  Only
# that gap is decoration: the spaces after it are the line's own indent.
@pytest.mark.parametrize("gap", ["  ", " "])
def test_a_jenkins_time_keeps_the_lines_own_indent(gap: str) -> None:
    from forensics.analyze.logs.decorations import LogDecorations

    lines = [
        "Fatal Python error: Segmentation fault",
        "",
        "Current thread 0x00007f3bd8e28b80 (most recent call first):",
        '  File "/home/jenkins/ws/tests/test_crash.py", line 8 in test_segv',
        "    x = 1",
        "+++++++++++++++++++++++++++++++++++ Timeout ++++++++++++++++++++++++++++++++++++",
    ]
    decorations = LogDecorations()
    for line in lines:
        assert decorations.strip(f"17:49:05{gap}{line}") == (line, None)


@pytest.mark.parametrize(
    "raw",
    [
        '2026-03-02T17:49:05.0414561Z   File "<frozen runpy>", line 198, in _run_module_as_main',
        '2024-01-01T00:00:00.123456Z 00O   File "/x/a.py", line 3 in f',
        '[2024-05-01T10:00:00.123Z]   File "/x/a.py", line 3 in f',
    ],
)
def test_other_ci_times_keep_the_lines_own_indent(raw: str) -> None:
    assert strip(raw)[0].startswith('  File "')


def _jenkins(bare: str, gap: str) -> str:
    # Real console output, as Jenkins' timestamper shows it (the clock carries no date, so
    # nothing about the analysis may change but what the indent decides).
    return "".join(f"17:49:{i % 60:02d}{gap}{line}" for i, line in enumerate(bare.splitlines(True)))


@pytest.mark.parametrize("gap", ["  ", " "])
@pytest.mark.parametrize(
    "name", ["real_xdist_spliced_faults.log", "real_timeout_thread.log", "real_facts_thread.log"]
)
def test_a_jenkins_timestamped_log_reads_as_the_bare_one(
    name: str, gap: str, tmp_path: Path
) -> None:
    from forensics.analyze.logs import analyze_logs

    bare = Path(__file__).parent.parent / "fixtures" / "logs" / name
    dressed = tmp_path / name
    dressed.write_text(_jenkins(bare.read_text(), gap))

    def view(path: Path) -> list[object]:
        incidents = analyze_logs([str(path)]).incidents
        assert incidents
        return [
            (i.cause, i.test, i.signal, i.summary, [(s.thread, s.frames) for s in i.stacks])
            for i in incidents
        ]

    assert view(dressed) == view(bare)
