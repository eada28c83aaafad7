"""When a dead xdist worker last printed a line of its own, found in the bytes before its
``[gwN] node down`` line.

The reader keeps the last ``LOOKBACK`` bytes of whole lines (``history``) and the buffer it is
scanning; a node-down line at ``buf[pos]`` is looked back from across both, in place (joining
them would copy megabytes for each dead worker).  The tag ``[gwN] `` is searched for
backwards; a worker that died before it printed anything (a replacement that crashed on its
first test) costs the whole ``LOOKBACK``.  A log that loses a worker every few tests has
thousands of those in a buffer, so after the first ``SEARCHES`` node-downs of a buffer one
pass indexes every tag in it, and each later look-up is a bisection.  Both ways find the same
line.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterator

from forensics.analyze.logs.decorations import strip, timestamp
from forensics.analyze.logs.scan import MAX_LINE

LOOKBACK = 1 << 20  # bytes searched back for a dead worker's last line of its own
SEARCHES = 8  # node-downs of a buffer looked back for with rfind before the tags are indexed
_TAG = re.compile(rb"\[(gw\d+)\] ")


def _decode(raw: bytes | bytearray) -> str:
    return raw[:MAX_LINE].decode("utf-8", "replace")


class OwnLines:
    """Look-ups in one buffer (``buf[:end]``, whole lines) after its ``history``.

    Positions are in the two joined: ``history`` first, then ``buf``; ``history`` ends with
    a newline, so no line and no tag spans the two.
    """

    def __init__(
        self, history: bytes, buf: bytes | bytearray, end: int, searches: int = SEARCHES
    ) -> None:
        self.history, self.buf, self.end = history, buf, end
        self._searches = searches
        self._index: dict[bytes, list[int]] | None = None

    def before(self, pos: int, size: int) -> bytes:
        """The ``size`` bytes before ``buf[pos]``, reaching back into the history."""
        head = bytes(self.buf[max(0, pos - size) : pos])
        if pos >= size:
            return head
        return self.history[max(0, len(self.history) - (size - pos)) :] + head

    def last_time(self, worker: bytes, pos: int) -> tuple[bool, float | None]:
        """The last line before ``buf[pos]`` (within ``LOOKBACK``) that xdist printed for
        ``worker``: (whether there is one, the epoch time of its CI timestamp)."""
        start = len(self.history) + pos
        tag = b"[" + worker + b"] "
        name = worker.decode()
        limit = start  # candidates at or past it are in a line already rejected
        for at in self._tags(worker, tag, max(0, start - LOOKBACK), start):
            if at >= limit:
                continue
            line_start, line = self._line(at, start)
            # The tag must start what the program printed: after the CI timestamp, if any.
            text = _decode(line)
            if strip(text)[1] == name:
                return True, timestamp(text)
            limit = line_start
        return False, None

    def _tags(self, worker: bytes, tag: bytes, lo: int, start: int) -> Iterator[int]:
        """Where ``tag`` starts in [lo, start), newest first."""
        if self._index is None and self._searches > 0:
            self._searches -= 1
            yield from self._rfind(tag, lo, start)
            return
        if self._index is None:
            self._index = self._build()
        found = self._index.get(worker, [])
        for i in range(bisect_left(found, start) - 1, -1, -1):
            if found[i] < lo:
                return
            yield found[i]

    def _rfind(self, tag: bytes, lo: int, start: int) -> Iterator[int]:
        size = len(self.history)
        end = start
        # The rejected line's start bounds the next search; the caller skips what is past it,
        # so each search begins again below the last candidate.
        while end > max(lo, size):
            at = self.buf.rfind(tag, max(lo, size) - size, end - size)
            if at < 0:
                break
            yield size + at
            end = size + at
        end = min(end, size)
        while end > lo:
            at = self.history.rfind(tag, lo, end)
            if at < 0:
                return
            yield at
            end = at

    def _build(self) -> dict[bytes, list[int]]:
        index: dict[bytes, list[int]] = {}
        for match in _TAG.finditer(self.history):
            index.setdefault(match.group(1), []).append(match.start())
        size = len(self.history)
        for match in _TAG.finditer(self.buf, 0, self.end):
            index.setdefault(match.group(1), []).append(size + match.start())
        return index

    def _line(self, at: int, start: int) -> tuple[int, bytes]:
        """The line holding position ``at``, cut at ``start``: (where it starts, its bytes)."""
        size = len(self.history)
        if at >= size:
            local, stop = at - size, start - size
            first = self.buf.rfind(b"\n", 0, local) + 1
            cut = self.buf.find(b"\n", local, stop)
            return size + first, bytes(self.buf[first : cut if cut >= 0 else stop])
        first = self.history.rfind(b"\n", 0, at) + 1
        cut = self.history.find(b"\n", at)  # the history ends with one
        return first, self.history[first:cut]
