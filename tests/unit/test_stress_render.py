from __future__ import annotations

import json
import time
from pathlib import Path

from forensics.limits import RunLimits
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
        store.groups("pytest t.py", "/w"),
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
    assert "| serial (-n 0) | 2 | 1 | 1 | 0 | 0 | **50%** |" in md
    assert "| -n 4 | 2 | 0 | 2 | 2 | 0 | **0%** |" in md
    # One line per signature across the levels, counted per level, with where it was first seen.
    assert (
        f"| python-exception | - | `{QUEUE}` | 1/2 | 1/2 | `{tmp_path}/n0-2` | "
        "`ValueError: Queue <... at 0x7f00> is closed` |"
    ) in md


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
    levels, groups = store.levels("pytest", "/w"), store.groups("pytest", "/w")
    report = StressReport("pytest <b>", "/w", "h", 1, "s", 1, None, levels, groups)
    html = render(report, "html")
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    md = render(report, "markdown")
    assert "\\| 'x'" in md  # a pipe or backtick cannot break the table
    assert json.loads(render(report, "json"))["levels"][0]["signatures"][0]["sample"] == (
        "<img src=x onerror=alert(1)>"
    )


def _hang(phase: str, signature: str = "hang at wait (threading.py) < stop (tests/conftest.py)"):
    return Failure(
        "hang", signature, "worker gw1 made no progress", "t.py::test_h", "I1", True, phase
    )


def test_hangs_are_counted_with_their_phase_and_grouped_across_levels(tmp_path: Path) -> None:
    store = History(tmp_path / "h.sqlite")
    limits = RunLimits(hang_timeout=3, timeout=0, interrupt_grace=10)
    crash = Failure("native-crash", "native-crash t.py::test_v", "died", "t.py::test_v", "I2", True)
    plan = [
        (0, []),
        (0, [_hang("teardown")]),
        (2, [_hang("teardown")]),
        (2, [_hang("teardown"), crash]),
        (2, [_hang("call", "hang at test_h (t.py)")]),
    ]
    for n, (level, failures) in enumerate(plan, 1):
        it = _iteration(tmp_path, level, n, failures)
        it.limits = limits
        store.add("s", "pytest t.py", "/w", it)
    report = StressReport(
        "pytest t.py",
        "/w",
        str(store.path),
        1,
        "s",
        5,
        None,
        store.levels("pytest t.py", "/w"),
        store.groups("pytest t.py", "/w"),
        store.limits("pytest t.py", "/w"),
    )
    store.close()
    data = json.loads(render(report, "json"))
    serial, two = data["levels"]
    assert (serial["hung"], serial["hangs_by_phase"], serial["crashed"]) == (1, {"teardown": 1}, 0)
    assert (two["hung"], two["hangs_by_phase"], two["crashed"]) == (
        3,
        {"teardown": 2, "call": 1},
        1,
    )
    teardown = data["signatures"][0]
    assert (teardown["cause"], teardown["phase"], teardown["counts"]) == (
        "hang",
        "teardown",
        {"0": 1, "2": 2},
    )
    assert teardown["first_bundle"] == str(tmp_path / "n0-2")
    assert data["limits"] == [
        {"hang_timeout": 3.0, "timeout": 0.0, "interrupt_grace": 10.0, "iterations": 5}
    ]
    md = list(markdown_lines(report))
    assert "| -n 2 | 3 | 0 | 3 | 1 | 3 (teardown 2, call 1) | **0%** |" in md
    assert (
        "| hang | teardown | `hang at wait (threading.py) < stop (tests/conftest.py)` | 1/2 | 2/3 "
        f"| `{tmp_path}/n0-2` | `worker gw1 made no progress` |"
    ) in md
    assert "| hang | call | `hang at test_h (t.py)` | 0/2 | 1/3 |" in "\n".join(md)
    assert any("--hang-timeout 3 --timeout 0 --interrupt-grace 10" in line for line in md)
    text = "\n".join(text_lines(report))
    assert "[hang in teardown] hang at wait (threading.py)" in text
