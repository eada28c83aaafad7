"""Read a log as bytes in bounded chunks and feed the scanner only the lines that matter.

The prefilter runs over whole buffers in C (:data:`patterns.TRIGGER_BYTES`); Python only
touches the lines it hits and the lines of an open block.  A line longer than
``MAX_LINE`` is cut (its head is scanned, the rest skipped), so memory stays bounded
whatever the input: no newline for a gigabyte is fine.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import zlib
from typing import IO, cast

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.decorations import strip, timestamp
from forensics.analyze.logs.prefilter import count_newlines, hits
from forensics.analyze.logs.scan import MAX_LINE, LogScan, Scanner
from forensics.analyze.logs.timing import STARTS_WINDOW
from forensics.errors import InputError

CHUNK = 2 << 20  # 2 MiB: the prefilter's temporaries stay cache-sized (faster than 4-8 MiB)
GZIP_MAGIC = b"\x1f\x8b"
LOOKBACK = 1 << 20  # bytes searched back for a dead worker's last line of its own
_NODE_DOWN_WORKER = re.compile(rb"\[(gw\d+)\] node down")


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
    history = b""  # the last LOOKBACK bytes of whole lines already scanned
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
            lineno = _scan_buffer(scanner, buf, end, lineno, history)
            history = buf[end - LOOKBACK : end] if end >= LOOKBACK else (history + buf[:end])
            history = history[-LOOKBACK:]
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


def _scan_buffer(scanner: Scanner, buf: bytes, end: int, lineno: int, history: bytes = b"") -> int:
    """Feed the trigger lines of ``buf[:end]`` (whole lines); return the last line number."""
    pos = 0  # start of the next unconsumed line
    found = hits(buf, end)
    hit = -1
    while pos < end:
        if scanner.wants_all:
            nl = buf.find(b"\n", pos, end)
            prev = _prev_line(history, buf, pos)
            lineno += 1
            if b"node down" in buf[pos:nl]:
                _worker_last_seen(
                    scanner, history + buf[:nl], len(history) + pos, len(history) + nl
                )
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
        prev = _prev_line(history, buf, start)
        lineno += 1
        if b"node down" in buf[start:nl]:
            _worker_last_seen(scanner, history + buf[:nl], len(history) + start, len(history) + nl)
        scanner.feed(_decode(buf[start:nl]), lineno, prev)
        pos = nl + 1
    return lineno


def _prev_line(history: bytes, buf: bytes, start: int) -> str | None:
    """The line before the one at ``buf[start]``, from the buffer or the one before it."""
    if start:
        return _decode(buf[buf.rfind(b"\n", 0, start - 1) + 1 : start - 1])
    if history:
        return _decode(history[history.rfind(b"\n", 0, len(history) - 1) + 1 : -1])
    return None


def _worker_last_seen(scanner: Scanner, buf: bytes, start: int, end: int) -> None:
    """When the dead worker last printed a line of its own (``[gwN] [ 40%] PASSED ...``).

    Only for node-down lines, and only back within this buffer: the prefilter never hands the
    scanner a worker's ordinary result lines, and a timestamped log needs no more.
    """
    if scanner.wants_starts:
        scanner.note_starts(buf[max(0, start - STARTS_WINDOW) : start].decode("utf-8", "replace"))
    found = _NODE_DOWN_WORKER.search(buf, start, end)
    if found is None:
        return
    worker = found.group(1)
    tag = b"[" + worker + b"] "
    at = buf.rfind(tag, max(0, start - LOOKBACK), start)
    while at >= 0:
        line_start = buf.rfind(b"\n", 0, at) + 1
        line = buf[line_start : buf.find(b"\n", at, start) if b"\n" in buf[at:start] else start]
        # The tag must start what the program printed: after the CI timestamp, if any.
        if strip(_decode(line))[1] == worker.decode():
            when = timestamp(_decode(line))
            if when is not None:
                scanner.worker_last_seen[worker.decode()] = when
            return
        at = buf.rfind(tag, max(0, start - LOOKBACK), line_start)
