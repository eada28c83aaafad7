"""Test counts from pytest's progress lines, for a log that ends before its summary line.

A run that crashed never prints ``== 3 failed, 76 passed in 4.2s ==``; its progress lines
(``tests/x.py ..F.s   [ 3%]``, ``tests/x.py::test_a PASSED``, ``[gw1] [ 3%] PASSED ...``) still
say how far it got.  They are not trigger lines (there is one per test under ``-v``: parsing
them would cost the scanner its speed), so this is a second pass, in C-level regular
expressions over bounded chunks, made only when the summary is missing and the log is small
enough for the pass to stay cheap.
"""

from __future__ import annotations

import os
import re

from forensics.analyze.logs.reader import open_input
from forensics.model import TestCounts

MAX_BYTES = 64 << 20  # a crashed run's log beyond this keeps counts it cannot prove
CHUNK = 4 << 20
_PREFIX = rb"[ \t]*(?:\S+Z )?(?:\[gw\d+\] )?"  # indentation, a CI timestamp, xdist's worker
PROGRESS = re.compile(
    rb"(?m)^" + _PREFIX + rb"(?:"
    # the dots line; also the one a death cut short ("tests/x.py ....Aborted (core dumped)")
    rb"[\w./\\-]+\.py (?P<dots>[.FEsxX]+)"
    rb"(?=[ \t]*\[ *\d+%\][ \t\r]*$|[ \t\r]*$|Aborted|Segmentation fault|Killed|Bus error"
    rb"|Fatal Python error|Windows fatal exception)"
    # pytest -v: "tests/x.py::test_a PASSED   [ 3%]"; xdist -v: "[gw0] [ 3%] PASSED tests/x.py::a"
    # The path holds no colon, so only its first ".py::" can end it: "\S+\.py::" would try
    # every one of them in a hostile line, and scan the rest of the line from each (quadratic).
    rb"|[^\s:]+\.py::\S+ (?P<word>PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\b"
    rb"|\[ *\d+%\] (?P<xword>PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS) \S+"
    rb")"
)
_BY_WORD = {b"PASSED": "passed", b"FAILED": "failed", b"SKIPPED": "skipped", b"ERROR": "error"}


def count(data: bytes, counts: TestCounts) -> None:
    """Add the results of the progress lines in *data* (whole lines) to *counts*."""
    for match in PROGRESS.finditer(data):
        dots = match.group("dots")
        if dots is not None:
            counts.passed += dots.count(b".")
            counts.failed += dots.count(b"F")
            counts.error += dots.count(b"E")
            counts.skipped += dots.count(b"s")
            continue
        word = _BY_WORD.get(match.group("word") or match.group("xword") or b"")
        if word is not None:
            setattr(counts, word, getattr(counts, word) + 1)


def count_file(path: str) -> TestCounts | None:
    """Counts from the progress lines of the log at *path*; None when it is too big or unread."""
    if path == "-":
        return None  # stdin was read once already
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return None  # decided before reading: a big log is not read twice
    except OSError:
        return None
    counts = TestCounts()
    carry = b""
    read = 0
    try:
        with open_input(path) as stream:
            while chunk := stream.read(CHUNK):
                read += len(chunk)
                if read > MAX_BYTES:
                    return None
                buf = carry + chunk
                end = buf.rfind(b"\n") + 1
                count(buf[:end], counts)
                carry = buf[end:]
            count(carry, counts)
    except (OSError, EOFError, ValueError):
        return None
    return counts
