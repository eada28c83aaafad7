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
