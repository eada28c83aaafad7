"""A dead xdist worker's last line of its own, looked back for from its node-down line.

The look-back dates a worker's silence (``NodeDown.silent_s``).  A run that loses a worker
every few tests has thousands of node-down lines; each look-back once joined the reader's
history and buffer (megabytes) and searched a megabyte back for a replacement worker that
died before it printed anything.
"""

from __future__ import annotations

import io
import time

import pytest

from forensics.analyze.logs.decorations import timestamp
from forensics.analyze.logs.own_lines import LOOKBACK, OwnLines
from forensics.analyze.logs.reader import scan_stream
from forensics.analyze.logs.scan import scan_lines


def _stamp(n: int) -> str:
    # One line every 10 ms, as a busy GitHub Actions job prints them.
    return f"2026-03-02T17:{n // 6000 % 60:02d}:{n // 100 % 60:02d}.{n % 100:02d}00000Z"


def _passed(n: int, worker: int) -> str:
    return f"[gw{worker}] [ {n % 100:2d}%] PASSED tests/test_reader_cache.py::test_parse_{n} "


def _losing_run(every: int, half: int = 22_000) -> bytes:
    """``half`` lines of xdist results (2 MB), then as many again where every ``every``-th line
    is a replacement worker going down before it printed a line (the look-back finds none)."""
    lines = [f"{_stamp(n)} {_passed(n, n % 8)}" for n in range(half)]
    fresh = 8
    for n in range(half, 2 * half):
        if n % every == every - 1:
            lines.append(f"{_stamp(n)} [gw{fresh}] node down: Not properly terminated")
            fresh += 1
        else:
            lines.append(f"{_stamp(n)} {_passed(n, n % 8)}")
    return ("\n".join(lines) + "\n").encode()


def test_thousands_of_dead_workers_cost_their_lines_not_a_megabyte_each() -> None:
    data = _losing_run(every=2)  # 11,000 dead workers
    start = time.process_time()
    scan = scan_stream(io.BytesIO(data), "ci.log")
    assert time.process_time() - start < 2.0  # was 5 s (0.6 s now), on a loaded 2-core box
    assert len(scan.node_downs) == 2000  # the records kept; every one was looked back for


def _buffers() -> tuple[bytes, bytearray, dict[str, int]]:
    """A history and a buffer with the cases a look-back meets; the node-down line of each
    worker, by name."""
    history_lines = [
        "some earlier output",
        f"{_stamp(1)} [gw1] [ 10%] PASSED tests/a.py::test_1 ",  # gw1: in the history only
        f"{_stamp(2)} [gw2] [ 11%] PASSED tests/a.py::test_2 ",
        f"{_stamp(3)} [gw5] [ 12%] PASSED tests/a.py::test_3 ",  # gw5: behind a decoy
    ]
    history = ("x" * 300 + "\n" + "\n".join(history_lines) + "\n").encode()
    lines = [
        f"{_stamp(4)} [gw2] [ 13%] PASSED tests/a.py::test_4 ",  # gw2: newer, in the buffer
        f"{_stamp(5)} [gw3] [ 14%] PASSED tests/a.py::test_5 ",
        f"{_stamp(6)} captured: see [gw5] in the middle of another line",  # not gw5's own
        "[gw4] [ 15%] PASSED tests/a.py::test_6 ",  # gw4: its own line has no time
        f"{_stamp(7)} [gw1] node down: Not properly terminated",
        f"{_stamp(8)} [gw2] node down: Not properly terminated",
        f"{_stamp(9)} [gw3] node down: Not properly terminated",
        f"{_stamp(10)} [gw4] node down: Not properly terminated",
        f"{_stamp(11)} [gw5] node down: Not properly terminated",
        f"{_stamp(12)} [gw6] node down: Not properly terminated",  # gw6: never printed
    ]
    buf = bytearray(("\n".join(lines) + "\n").encode())
    downs = {}
    for line in lines:
        if "node down" in line:
            worker = line.split("[", 1)[1].split("]", 1)[0]
            downs[worker] = buf.find(line.encode())
    return history, buf, downs


@pytest.mark.parametrize("searches", [0, 2, 1000], ids=["indexed", "mixed", "searched"])
def test_the_look_back_finds_the_workers_own_last_line(searches: int) -> None:
    history, buf, downs = _buffers()
    own = OwnLines(history, buf, len(buf), searches)
    found = {w: own.last_time(w.encode(), pos) for w, pos in downs.items()}

    def at(n: int) -> float | None:
        return timestamp(f"{_stamp(n)} x")

    assert found == {
        "gw1": (True, at(1)),
        "gw2": (True, at(4)),
        "gw3": (True, at(5)),
        "gw4": (True, None),
        "gw5": (True, at(3)),
        "gw6": (False, None),
    }


def test_the_look_back_stops_a_megabyte_back() -> None:
    far = f"{_stamp(1)} [gw1] [ 10%] PASSED tests/a.py::test_1 \n".encode()
    filler = b"." * 99 + b"\n"
    history = far + filler * (LOOKBACK // 100 + 1)  # past the look-back
    buf = bytearray(f"{_stamp(2)} [gw1] node down: Not properly terminated\n".encode())
    for searches in (0, 1000):
        assert OwnLines(history, buf, len(buf), searches).last_time(b"gw1", 0) == (False, None)
        near = OwnLines(history[len(far) :] + far, buf, len(buf), searches)
        assert near.last_time(b"gw1", 0)[0]


def test_the_byte_reader_dates_silences_as_the_line_reader_does() -> None:
    data = _losing_run(every=5, half=14_000)  # past the reader's first buffer (2 MiB)
    by_bytes = scan_stream(io.BytesIO(data), "ci.log")
    by_lines = scan_lines(data.decode().splitlines(True), "ci.log")
    silences = [(d.worker, d.silent_s, d.silent_of) for d in by_bytes.node_downs]
    assert silences == [(d.worker, d.silent_s, d.silent_of) for d in by_lines.node_downs]
    assert any(s is not None for _w, s, _of in silences)
