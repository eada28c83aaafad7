"""No input makes the analyzer raise: arbitrary bytes, mutated real logs, odd encodings."""

from __future__ import annotations

import io
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forensics.analyze.logs import scan_lines
from forensics.analyze.logs.correlate import correlate
from forensics.analyze.logs.junit import scan_junit
from forensics.analyze.logs.reader import scan_stream
from forensics.errors import InputError

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
REAL = sorted(p.read_bytes() for p in LOGS.glob("*.log"))
JUNIT = (LOGS / "junit_xdist.xml").read_bytes()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _analyze_bytes(data: bytes) -> None:
    scan = scan_stream(io.BytesIO(data), "fuzz.log")
    for incident in correlate(scan):
        assert incident.cause and incident.summary


def _mutate(data: bytes, seed: int, edits: int) -> bytes:
    rng = random.Random(seed)
    buf = bytearray(data)
    for _ in range(edits):
        op = rng.randrange(4)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # drop a run of bytes
            del buf[pos : pos + rng.randrange(1, 200)]
        elif op == 1:  # insert junk, including invalid UTF-8 and NULs
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        elif op == 2 and buf:  # duplicate a slice elsewhere (interleaving)
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randrange(1, 400)]
        else:  # swap lines around
            lines = bytes(buf).split(b"\n")
            rng.shuffle(lines)
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)


@FAST
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(data: bytes) -> None:
    _analyze_bytes(data)


@FAST
@given(st.sampled_from(REAL), st.integers(0, 2**32), st.integers(1, 30))
def test_mutated_real_logs(data: bytes, seed: int, edits: int) -> None:
    _analyze_bytes(_mutate(data, seed, edits))


@FAST
@given(st.lists(st.text(max_size=200), max_size=50))
def test_arbitrary_text_lines(lines: list[str]) -> None:
    correlate(scan_lines(lines, "fuzz"))


@FAST
@given(st.integers(0, 2**32), st.integers(1, 20))
def test_mutated_junit(seed: int, edits: int) -> None:
    try:
        scan = scan_junit(io.BytesIO(_mutate(JUNIT, seed, edits)), "fuzz.xml")
    except InputError:
        return  # a refused document is a one-line error, which is allowed
    correlate(scan)


def test_pathological_inputs() -> None:
    for data in (
        # found by fuzzing: a mangled duration, an unknown XML encoding
        b"========= 3 failed, 1 passed in 932.3.41s ==========\n",
        b"",
        b"\n" * 100_000,
        b"\xff\xfe\x00" * 50_000,
        b"Fatal Python error: Aborted\n" * 5_000,
        b"Traceback (most recent call last):\n" + b'  File "x", line 1, in f\n' * 20_000,
        b"INTERNALERROR> " * 100_000,
        b"+" * 30 + b" Timeout " + b"+" * 30 + b"\n" + b"  x\n" * 10_000,
    ):
        _analyze_bytes(data)
    scan = scan_junit(io.BytesIO(b'<?xml version="1.0" encoding="uf-8"?><testsuite/>'), "j.xml")
    assert scan.notes
