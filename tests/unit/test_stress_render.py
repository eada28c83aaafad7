from __future__ import annotations

import json
import time
from pathlib import Path

from forensics.stress.history import History
from forensics.stress.render import StressReport, markdown_lines, render, text_lines
from forensics.stress.runner import Failure, Iteration

QUEUE = "ValueError: Queue <multiprocessing.queues.Queue object at <addr>> is closed"


def _iteration(tmp: Path, level: int, index: int, failures: list[Failure]) -> Iteration:
    bundle = tmp / f"n{level}-{index}"
    bundle.mkdir()
    return Iteration(
        level, index, ["pytest"], bundle, 1 if failures else 0, 2.0, time.time(), failures
    )


def _report(tmp_path: Path, sessions: int = 1) -> StressReport:
    store = History(tmp_path / "h.sqlite")
    crash = Failure(
        "native-crash", "native-crash t.py::test_v", "worker died", "t.py::test_v", "I1", True
    )
    queue = Failure(
        "python-exception",
        QUEUE,
        "ValueError: Queue <... at 0x7f00> is closed",
        "t.py::test_q",
        "I2",
        False,
    )
    n = 0
    for session in range(sessions):
        for level, failures in ((0, []), (0, [queue]), (4, [crash, queue]), (4, [crash])):
            n += 1
            store.add(f"s{session}", "pytest t.py", "/w", _iteration(tmp_path, level, n, failures))
    report = StressReport(
        "pytest t.py",
        "/w",
        str(store.path),
        store.sessions("pytest t.py", "/w"),
        "s0",
        4,
        None,
        store.levels("pytest t.py", "/w"),
    )
    store.close()
    return report


def test_levels_count_iterations_by_cause_and_signature(tmp_path: Path) -> None:
    data = json.loads(render(_report(tmp_path), "json"))
    assert data["schema"] == "forensics.stress/1"
    serial, four = data["levels"]
    assert (serial["parallel"], serial["iterations"], serial["passed"]) == (0, 2, 1)
    assert serial["by_cause"] == {"python-exception": 1}
    assert four["by_cause"] == {"native-crash": 2, "python-exception": 1}
    assert [(s["signature"], s["count"]) for s in four["signatures"]] == [
        ("native-crash t.py::test_v", 2),
        (QUEUE, 1),
    ]


def test_history_adds_later_sessions_to_the_same_table(tmp_path: Path) -> None:
    data = json.loads(render(_report(tmp_path, sessions=2), "json"))
    assert data["sessions"] == 2
    assert [lv["iterations"] for lv in data["levels"]] == [4, 4]
    assert data["levels"][1]["by_cause"]["native-crash"] == 4


def test_text_and_markdown_tables(tmp_path: Path) -> None:
    report = _report(tmp_path)
    text = list(text_lines(report))
    assert any(line.split()[:5] == ["-n", "4", "2", "0", "2"] for line in text)
    assert any(line.startswith("  forensics bisect ") and "--incident I1" in line for line in text)
    md = list(markdown_lines(report))
    assert "| serial (-n 0) | 2 | 1 | 1 | **50%** |" in md
    assert "| **Total failures** | | **2** | **100%** | |" in md


def test_every_view_escapes_what_tests_print(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    evil = Failure(
        "python-exception",
        "AssertionError: <script>alert(1)</script> | `x`",
        "<img src=x onerror=alert(1)>",
        None,
        "I1",
        False,
    )
    store.add("s", "pytest", "/w", _iteration(tmp_path, 2, 1, [evil]))
    report = StressReport("pytest <b>", "/w", "h", 1, "s", 1, None, store.levels("pytest", "/w"))
    html = render(report, "html")
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    md = render(report, "markdown")
    assert "\\| 'x'" in md  # a pipe or backtick cannot break the table
    assert json.loads(render(report, "json"))["levels"][0]["signatures"][0]["sample"] == (
        "<img src=x onerror=alert(1)>"
    )
