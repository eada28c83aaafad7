"""Read a log as bytes in bounded chunks and feed the scanner only the lines that matter.

The prefilter runs over whole buffers in C (:data:`patterns.TRIGGER_BYTES`); Python only
touches the lines it hits and the lines of an open block.  A line longer than
``MAX_LINE`` is cut (its head is scanned, the rest skipped), so memory stays bounded
whatever the input: no newline for a gigabyte is fine.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from typing import IO, cast

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.prefilter import count_newlines, hits
from forensics.analyze.logs.scan import MAX_LINE, LogScan, Scanner
from forensics.errors import InputError

CHUNK = 2 << 20  # 2 MiB: the prefilter's temporaries stay cache-sized (faster than 4-8 MiB)
GZIP_MAGIC = b"\x1f\x8b"


def _decode(raw: bytes) -> str:
    return raw[:MAX_LINE].decode("utf-8", "replace")


def open_input(path: str) -> IO[bytes]:
    """Open *path* ('-' is stdin) for reading bytes, gunzipping when the data is gzip."""
    if path == "-":
        stream: IO[bytes] = sys.stdin.buffer
    else:
        if os.path.isdir(path):
            raise InputError(
                f"{path} is a directory; pass the log files in it"
                " (a bundle goes to `forensics report`)"
            )
        try:
            stream = open(path, "rb")  # noqa: SIM115 - returned to the caller, who closes it
        except FileNotFoundError:
            raise InputError(f"{path}: no such file") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    peek = getattr(stream, "peek", None)
    head = peek(2)[:2] if peek is not None else b""
    if head == GZIP_MAGIC or (not head and path.endswith(".gz")):
        return cast("IO[bytes]", gzip.GzipFile(fileobj=stream, mode="rb"))
    return stream


def scan_stream(stream: IO[bytes], source: str) -> LogScan:
    """Scan a byte stream in constant memory; damage (truncated gzip) becomes a note."""
    scanner = Scanner(source)
    lineno = 0  # number of the last line fully consumed
    carry = b""
    skipping = False  # inside the tail of an over-long line
    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            if skipping:
                cut = chunk.find(b"\n")
                if cut < 0:
                    continue
                # The cut line was counted when its head was fed.
                chunk, skipping = chunk[cut + 1 :], False
            buf = carry + chunk if carry else chunk
            end = buf.rfind(b"\n") + 1
            if end == 0:
                if len(buf) > MAX_LINE:
                    # One line without an end: scan its head, drop the rest.
                    lineno += 1
                    scanner.feed(_decode(buf), lineno)
                    carry, skipping = b"", True
                else:
                    carry = buf
                continue
            lineno = _scan_buffer(scanner, buf, end, lineno)
            carry = buf[end:]
            if len(carry) > MAX_LINE:
                lineno += 1
                scanner.feed(_decode(carry), lineno)
                carry, skipping = b"", True
    except (OSError, EOFError, zlib.error) as exc:
        scanner.scan.notes.append(f"{source}: input ends early after line {lineno}: {exc}")
    if carry:
        lineno += 1
        if scanner.wants_all or P.TRIGGER.search(_decode(carry)):
            scanner.feed(_decode(carry), lineno)
    scanner.scan.lines = max(scanner.scan.lines, lineno)
    return scanner.finish()


def _scan_buffer(scanner: Scanner, buf: bytes, end: int, lineno: int) -> int:
    """Feed the trigger lines of ``buf[:end]`` (whole lines); return the last line number."""
    pos = 0  # start of the next unconsumed line
    found = hits(buf, end)
    hit = -1
    while pos < end:
        if scanner.wants_all:
            nl = buf.find(b"\n", pos, end)
            prev = _decode(buf[buf.rfind(b"\n", 0, pos - 1) + 1 : pos - 1]) if pos else None
            lineno += 1
            scanner.feed(_decode(buf[pos:nl]), lineno, prev)
            pos = nl + 1
            continue
        while hit < pos:
            hit = next(found, end)
        if hit >= end:
            return lineno + count_newlines(buf, pos, end)
        start = max(pos, buf.rfind(b"\n", pos, hit) + 1)
        lineno += count_newlines(buf, pos, start)
        nl = buf.find(b"\n", hit, end)
        prev = _decode(buf[buf.rfind(b"\n", 0, start - 1) + 1 : start - 1]) if start else None
        lineno += 1
        scanner.feed(_decode(buf[start:nl]), lineno, prev)
        pos = nl + 1
    return lineno
