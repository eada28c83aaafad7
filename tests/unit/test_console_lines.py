"""A bundle's console log: each finding gets the time its line reached the console, and is
matched to the wrap incident of that death, never to an unrelated one."""

from __future__ import annotations

import json
from pathlib import Path

from forensics.analyze.console import _line_times, enrich_from_console
from forensics.model import Incident

PANIC = [
    "thread '<unnamed>' panicked at src/lib.rs:42:9:",
    "index out of bounds: the len is 3 but the index is 7",
    "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
]


def _console(tmp_path: Path, lines: list[str], sizes: list[tuple[int, float]]) -> Path:
    output = tmp_path / "output.log"
    output.write_text("".join(f"{line}\n" for line in lines))
    (tmp_path / "output.idx.jsonl").write_text(
        "".join(json.dumps({"offset": o, "t": t}) + "\n" for o, t in sizes)
    )
    return output


def test_a_line_gets_the_first_size_note_past_its_start(tmp_path: Path) -> None:
    lines = ["aaaa", "bbbb", "cccc"]  # lines start at offsets 0, 5 and 10
    output = _console(tmp_path, lines, [(5, 100.0), (10, 101.0), (15, 102.0)])
    assert _line_times(output, {1, 2, 3}) == {1: 100.0, 2: 101.0, 3: 102.0}
    # A line past the last note has no time; no index, no times.
    assert _line_times(_console(tmp_path, lines, [(5, 100.0)]), {3}) == {}
    assert _line_times(_console(tmp_path, lines, []), {1}) == {}


def _death(test: str, signal: str, time: float) -> Incident:
    return Incident(
        id="",
        cause="native-crash",
        confidence="high",
        summary="died",
        signal=signal,
        test=test,
        time=time,
    )


def test_a_panic_goes_to_the_abort_printed_with_it_not_to_another_death(tmp_path: Path) -> None:
    lines = ["collected 2 items", *PANIC, "F"]
    size = sum(len(line) + 1 for line in lines)
    output = _console(tmp_path, lines, [(size, 50.0)])
    segv = _death("t.py::test_segv", "SIGSEGV", 50.1)
    abort = _death("t.py::test_abort", "SIGABRT", 49.9)
    found = enrich_from_console([segv, abort], output)
    assert (found.matched, found.unmatched) == (1, [])
    assert (
        abort.summary
        == "died after Rust panic: index out of bounds: the len is 3 but the index is 7"
    )
    assert abort.extra["console"] == [
        {"line": 2, "what": "Rust panic: index out of bounds: the len is 3 but the index is 7"}
    ]
    assert "console" not in segv.extra and segv.summary == "died"


def test_a_panic_far_from_every_death_is_left_unmatched(tmp_path: Path) -> None:
    lines = [*PANIC]
    output = _console(tmp_path, lines, [(sum(len(ln) + 1 for ln in lines), 10.0)])
    abort = _death("t.py::test_abort", "SIGABRT", 60.0)
    found = enrich_from_console([abort], output)
    assert found.matched == 0 and [e.line for e in found.unmatched] == [1]
    assert abort.summary == "died" and abort.evidence == []


def test_the_scan_keeps_the_consoles_end_for_the_run_section(tmp_path: Path) -> None:
    """output.log is read once: the scanner's read keeps its last bytes, where the run section
    finds why a run ended before its tests."""
    from forensics.analyze.console import TAIL_BYTES, console_events
    from forensics.analyze.run_facts import _output_errors

    end = [
        "ERROR: usage: pytest [options] [file_or_dir] [file_or_dir] [...]",
        "pytest: error: unrecognized arguments: --no-such-option",
        "  inifile: None",
    ]
    # Several of the scanner's chunks, lines cut across them, then the usage error.
    body = "".join(f"tests/test_{i}.py ....s...F....  [ {i % 100:2d}%]\n" for i in range(120_000))
    output = tmp_path / "output.log"
    output.write_text(body + "".join(f"{line}\n" for line in end))
    data = output.read_bytes()
    assert len(data) > 2 * (2 << 20)
    _, _, tail = console_events(output)
    assert tail == data[-TAIL_BYTES:]
    assert _output_errors(tail) == end[:2]
    small = _console(tmp_path, ["collected 0 items", "no tests ran in 0.01s"], [])
    _, _, tail = console_events(small)
    assert tail == small.read_bytes()
    assert _output_errors(tail) == ["collected 0 items", "no tests ran in 0.01s"]
    assert enrich_from_console([], small).tail == small.read_bytes()
