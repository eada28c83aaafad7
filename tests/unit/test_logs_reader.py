"""The byte reader keeps its memory bounded whatever the input."""

from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from forensics.analyze.logs import prefilter
from forensics.analyze.logs.reader import scan_stream

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
PATHS = [False] + ([True] if prefilter.np is not None else [])


class _Endless:
    """``size`` bytes of one line without a newline, then ``tail``; never held in memory."""

    def __init__(self, size: int, tail: bytes) -> None:
        self.left = size
        self.tail = tail
        self.block = b"x" * (1 << 20)

    def readinto(self, into: memoryview) -> int:
        if self.left:
            n = min(len(into), self.left, len(self.block))
            into[:n] = self.block[:n]
            self.left -= n
            return n
        n = min(len(into), len(self.tail))
        into[:n] = self.tail[:n]
        self.tail = self.tail[n:]
        return n

    def read(self, size: int = -1) -> bytes:  # pragma: no cover - readinto is used
        raise AssertionError("the reader reads in place")


@pytest.mark.parametrize("vectorised", PATHS)
def test_a_gibibyte_line_without_newline(vectorised: bool) -> None:
    stream = _Endless(1 << 30, b"\n[gw3] node down: Not properly terminated\ndone\n")
    tracemalloc.start()
    try:
        scan = scan_stream(stream, "x", prefilter.candidates_for(b"", vectorised))  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak / 2**20:.0f} MiB traced for a 1 GiB line"
    assert scan.lines == 3
    assert [(d.line, d.worker) for d in scan.node_downs] == [(2, "gw3")]


def test_a_stream_without_readinto_reads_the_same() -> None:
    data = (LOGS / "gha_xdist_crashes.log").read_bytes()

    class _ReadOnly:
        def __init__(self) -> None:
            self.inner = io.BytesIO(data)

        def read(self, size: int = -1) -> bytes:
            return self.inner.read(min(size, 1000))  # short reads, as from a pipe

    assert scan_stream(_ReadOnly(), "x") == scan_stream(io.BytesIO(data), "x")  # type: ignore[arg-type]


@pytest.mark.skipif(prefilter.np is None, reason="only the numpy keys can go stale")
def test_keys_follow_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys rare at the start but common later are chosen again where they stopped being rare."""
    from forensics.analyze.logs import reader

    head = b"tests/test_a.py ........................................  [ 1%]\n" * 40_000
    # "Stack (most recent" is keyed on a pair absent from the head; here it is everywhere.
    body = b"Stack (mo Stack (mo Stack (mo tests/test_b.py::test_x PASSED  [ 50%]\n" * 200_000
    data = head + body + b"Stack (most recent call first):\n"
    keyed: list[int] = []

    def counting(sample: prefilter.Buffer, vectorised: bool | None = None) -> prefilter.Candidates:
        keyed.append(len(sample))
        return prefilter.candidates_for(sample, vectorised)

    monkeypatch.setattr(reader, "candidates_for", counting)
    scan = reader.scan_stream(io.BytesIO(data), "x")
    assert len(keyed) == 2, keyed
    assert scan == reader.scan_stream(io.BytesIO(data), "x", prefilter.candidates_for(b"", False))
