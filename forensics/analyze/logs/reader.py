"""Read a log as bytes in bounded chunks and feed the scanner only the lines that matter.

The prefilter (:mod:`.prefilter`) runs over whole buffers in C and names candidate lines;
each is confirmed with :data:`patterns.TRIGGER_BYTES` before the scanner sees it, so Python
touches only trigger lines and the lines of an open block.  A line longer than ``MAX_LINE``
is cut (its head is scanned, the rest skipped), so memory stays bounded whatever the input:
no newline for a gigabyte is fine.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
import zlib
from typing import IO, cast

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.own_lines import LOOKBACK, OwnLines
from forensics.analyze.logs.prefilter import Candidates, candidates_for, count_newlines
from forensics.analyze.logs.scan import MAX_LINE, Scanner
from forensics.analyze.logs.scan.logscan import LogScan
from forensics.analyze.logs.timing import STARTS_WINDOW
from forensics.errors import InputError

CHUNK = 2 << 20  # 2 MiB: the prefilter's temporaries stay cache-sized (faster than 4-8 MiB)
_confirm = P.TRIGGER_BYTES.search
GZIP_MAGIC = b"\x1f\x8b"
_NODE_DOWN_WORKER = re.compile(rb"\[(gw\d+)\] node down")


def _decode(raw: bytes | bytearray) -> str:
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


def scan_stream(stream: IO[bytes], source: str, candidates: Candidates | None = None) -> LogScan:
    """Scan a byte stream in constant memory; damage (truncated gzip) becomes a note.

    ``candidates`` is the prefilter (default: the fastest available, keyed on the first chunk
    and keyed again on any chunk where its keys are no longer rare).
    """
    rekey = candidates is None
    scanner = Scanner(source)
    lineno = 0  # number of the last line fully consumed
    skipping = False  # inside the tail of an over-long line
    history = b""  # the last LOOKBACK bytes of whole lines already scanned
    # One buffer for the whole stream, read into in place: a partial last line (at most
    # MAX_LINE bytes, kept at the front) and then a chunk.  Fresh bytes per chunk would cost
    # an allocation, its page faults and a copy to join the partial line, as much as the search.
    buf = bytearray(MAX_LINE + CHUNK)
    view = memoryview(buf)
    kept = 0  # bytes of a partial line at the front of buf
    try:
        while True:
            got = _fill(stream, view[kept : kept + CHUNK])
            if not got:
                break
            filled = kept + got
            if candidates is None:
                candidates = candidates_for(bytes(view[kept:filled]))
            if skipping:  # then kept == 0
                cut = buf.find(b"\n", 0, filled)
                if cut < 0:
                    continue
                # The cut line was counted when its head was fed.
                buf[: filled - cut - 1] = buf[cut + 1 : filled]
                filled, skipping = filled - cut - 1, False
            end = buf.rfind(b"\n", 0, filled) + 1
            if end == 0:
                if filled > MAX_LINE:
                    # One line without an end: scan its head, drop the rest.
                    lineno += 1
                    scanner.feed(_decode(buf[:MAX_LINE]), lineno)
                    kept, skipping = 0, True
                else:
                    kept = filled
                continue
            lineno, rejected = _scan_buffer(scanner, buf, end, lineno, history, candidates)
            if rekey and rejected > end >> 12:
                # This part of the log is not like its start: key on what is rare here.
                candidates = candidates_for(bytes(view[:end]))
            if end >= LOOKBACK:
                history = bytes(view[end - LOOKBACK : end])
            else:
                history = (history + view[:end])[-LOOKBACK:]
            kept = filled - end
            if kept > MAX_LINE:
                lineno += 1
                scanner.feed(_decode(buf[end : end + MAX_LINE]), lineno)
                kept, skipping = 0, True
            else:
                buf[:kept] = buf[end:filled]
    except (OSError, EOFError, zlib.error) as exc:
        scanner.scan.notes.append(f"{source}: input ends early after line {lineno}: {exc}")
    if kept:
        lineno += 1
        last = _decode(buf[:kept])
        if scanner.wants_all or P.TRIGGER.search(last):
            scanner.feed(last, lineno)
    scanner.scan.lines = max(scanner.scan.lines, lineno)
    return scanner.finish()


def _fill(stream: IO[bytes], into: memoryview) -> int:
    """Read up to ``len(into)`` bytes into ``into``; 0 at the end of the stream."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        return int(readinto(into) or 0)
    data = stream.read(len(into))
    into[: len(data)] = data
    return len(data)


def _scan_buffer(
    scanner: Scanner,
    buf: bytes | bytearray,
    end: int,
    lineno: int,
    history: bytes = b"",
    candidates: Candidates | None = None,
) -> tuple[int, int]:
    """Feed the trigger lines of ``buf[:end]`` (whole lines).

    Returns the last line number and how many candidate lines were not trigger lines.
    """
    if candidates is None:
        candidates = candidates_for(buf[:CHUNK])
    pos = 0  # start of the next unconsumed line
    found = candidates(buf, end)
    hit = -1
    checked = 0  # candidates before this lie in lines already confirmed or rejected
    rejected = 0
    own: OwnLines | None = None  # the look-back for node-down lines, made at the first
    while pos < end:
        if scanner.wants_all:
            nl = buf.find(b"\n", pos, end)
            prev = _prev_line(history, buf, pos)
            lineno += 1
            if b"node down" in buf[pos:nl]:
                own = own or OwnLines(history, buf, end)
                _worker_last_seen(scanner, own, pos, nl)
            scanner.feed(_decode(buf[pos:nl]), lineno, prev)
            pos = nl + 1
            continue
        while hit < pos or hit < checked:
            hit = next(found, end)
        if hit >= end:
            return lineno + count_newlines(buf, pos, end), rejected
        start = max(pos, buf.rfind(b"\n", pos, hit) + 1)
        nl = buf.find(b"\n", hit, end)
        if _confirm(buf, start, nl) is None:
            checked = nl + 1
            rejected += 1
            continue
        lineno += count_newlines(buf, pos, start)
        prev = _prev_line(history, buf, start)
        lineno += 1
        if b"node down" in buf[start:nl]:
            own = own or OwnLines(history, buf, end)
            _worker_last_seen(scanner, own, start, nl)
        scanner.feed(_decode(buf[start:nl]), lineno, prev)
        pos = nl + 1
    return lineno, rejected


def _prev_line(history: bytes, buf: bytes | bytearray, start: int) -> str | None:
    """The line before the one at ``buf[start]``, from the buffer or the one before it."""
    if start:
        return _decode(buf[buf.rfind(b"\n", 0, start - 1) + 1 : start - 1])
    if history:
        return _decode(history[history.rfind(b"\n", 0, len(history) - 1) + 1 : -1])
    return None


def _worker_last_seen(scanner: Scanner, own: OwnLines, pos: int, nl: int) -> None:
    """When the dead worker of the node-down line at ``buf[pos:nl]`` last printed a line of
    its own (``[gwN] [ 40%] PASSED ...``).

    Only for node-down lines, and only back within this buffer and the history before it: the
    prefilter never hands the scanner a worker's ordinary result lines, and a timestamped log
    needs no more.
    """
    if scanner.wants_starts:
        scanner.note_starts(own.before(pos, STARTS_WINDOW).decode("utf-8", "replace"))
    found = _NODE_DOWN_WORKER.search(own.buf, pos, nl)
    if found is None:
        return
    when = own.last_time(found.group(1), pos)[1]
    if when is not None:
        scanner.worker_last_seen[found.group(1).decode()] = when
