"""The scanner's findings, and the byte-stream reader agreeing with the line API."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs import reader as reader_mod
from forensics.analyze.logs.reader import MAX_LINE, scan_stream
from forensics.errors import InputError

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _split(text: str) -> list[str]:
    # Lines end at "\n" only: GitLab's section markers carry a bare "\r" inside a line.
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _lines(name: str) -> list[str]:
    return _split((LOGS / name).read_bytes().decode("utf-8"))


def test_xdist_findings() -> None:
    scan = scan_lines(_lines("gha_xdist_crashes.log"), "ci.log")
    assert [(d.worker, d.reason) for d in scan.node_downs] == [
        ("gw1", "Not properly terminated"),
        ("gw0", "Not properly terminated"),
        ("gw2", "Not properly terminated"),
        ("gw3", "Not properly terminated"),
    ]
    assert [c.test for c in scan.crashed_items] == [
        "tests/test_crash.py::test_segv",
        "tests/test_crash.py::test_exit",
        "tests/test_crash.py::test_abort",
        "tests/test_crash.py::test_kill",
    ]
    assert [e.worker for e in scan.worker_events if e.kind == "replaced"] == [
        "gw1",
        "gw0",
        "gw2",
        "gw3",
    ]
    fatal = [(f.fatal, f.signal) for f in scan.faults if f.fatal]
    assert fatal == [("Segmentation fault", "SIGSEGV"), ("Aborted", "SIGABRT")]
    assert scan.summary is not None and scan.summary.duration_s == pytest.approx(8.09)
    assert scan.exit_code == 1


def test_max_crashed_and_internalerror() -> None:
    scan = scan_lines(_lines("gha_maxcrash_interleaved.log"), "ci.log")
    assert [e.kind for e in scan.worker_events] == ["replaced", "max-crashed"]
    scan = scan_lines(_lines("story000_robin_keyerror_714.log"), "ci.log")
    (err,) = scan.internal_errors
    assert (err.exc_type, err.message, err.ref, err.in_xdist) == (
        "KeyError",
        "<WorkerController gw14>",
        "pytest-dev/pytest-xdist#714",
        True,
    )
    assert err.where is not None and err.where.endswith("loadscope.py:_assign_work_unit")


def test_rust_panic_cpp_terminate_oom() -> None:
    scan = scan_lines(_lines("story001_dynamo_sigabrt.log"), "x")
    (panic,) = scan.native_aborts
    assert panic.kind == "rust-panic" and panic.message.startswith("Cannot drop a runtime")
    scan = scan_lines(_lines("cpp_terminate_worker.log"), "x")
    (term,) = scan.native_aborts
    assert term.message == "std::runtime_error: CUDA error: invalid device ordinal"
    scan = scan_lines(_lines("oom_worker_killed.log"), "x")
    oom = [k for k in scan.kills if k.kind == "oom" and k.pid]
    assert oom[-1].pid == 48211 and oom[-1].process == "python3"


def test_rust_backtrace_frames() -> None:
    lines = [
        "thread 'main' panicked at src/lib.rs:10:5:",
        "index out of bounds",
        "stack backtrace:",
        "   0: rust_begin_unwind",
        "             at /rustc/abc/library/std/src/panicking.rs:652:5",
        "   1: mycrate::compute",
        "             at ./src/lib.rs:10:5",
        "fatal runtime error: failed to initiate panic, error 5",
    ]
    scan = scan_lines(lines, "x")
    panic = scan.native_aborts[0]
    assert panic.message == "index out of bounds"
    assert [(f.name, f.line, f.native) for f in panic.frames] == [
        ("rust_begin_unwind", 652, True),
        ("mycrate::compute", 10, True),
    ]
    assert scan.native_aborts[1].kind == "rust-fatal"


def test_bare_traceback_and_infra() -> None:
    lines = [
        "Traceback (most recent call last):",
        '  File "/x/get.py", line 3, in <module>',
        "    fetch()",
        "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443):"
        " Max retries exceeded (Caused by NewConnectionError('Connection refused'))",
    ]
    scan = scan_lines(lines, "x")
    (tb,) = scan.tracebacks
    assert tb.exc_type == "requests.exceptions.ConnectionError"
    triage_cause = __import__("forensics.analyze.logs.correlate", fromlist=["correlate"]).correlate(
        scan
    )
    assert [i.cause for i in triage_cause] == ["infrastructure"]


def test_stream_and_lines_agree_on_every_fixture() -> None:
    for path in LOGS.glob("*.log"):
        by_lines = scan_lines(_split(path.read_bytes().decode("utf-8")), "x")
        by_stream = scan_stream(io.BytesIO(path.read_bytes()), "x")
        assert by_stream == by_lines, path.name


def test_small_chunks_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    data = (LOGS / "gha_xdist_crashes.log").read_bytes()
    whole = scan_stream(io.BytesIO(data), "x")
    monkeypatch.setattr(reader_mod, "CHUNK", 97)
    assert scan_stream(io.BytesIO(data), "x") == whole


def test_over_long_line_is_cut_and_counted() -> None:
    data = b"x" * (MAX_LINE * 5) + b"\n[gw1] node down: Not properly terminated\n"
    scan = scan_stream(io.BytesIO(data), "x")
    assert scan.lines == 2
    assert [d.line for d in scan.node_downs] == [2]


def test_line_longer_than_a_chunk() -> None:
    data = b"a" * (5 << 20) + b"\nFatal Python error: Aborted\n" + b"b" * (3 << 20)
    scan = scan_stream(io.BytesIO(data), "x")
    assert [f.line for f in scan.faults] == [2]
    assert scan.lines == 3


def test_gzip_and_truncated_gzip(tmp_path: Path) -> None:
    data = (LOGS / "story001_dynamo_sigabrt.log").read_bytes()
    whole = tmp_path / "ci.log.gz"
    whole.write_bytes(gzip.compress(data))
    assert analyze_logs([str(whole)]).incidents[0].signal == "SIGABRT"
    cut = tmp_path / "cut.gz"
    cut.write_bytes(gzip.compress(data)[: len(data) // 8])
    triage = analyze_logs([str(cut)])
    assert any("ends early" in note for note in triage.notes)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        analyze_logs([str(tmp_path / "nope.log")])
    with pytest.raises(InputError, match="is a directory"):
        analyze_logs([str(tmp_path)])
    with pytest.raises(InputError, match="no log given"):
        analyze_logs([])
