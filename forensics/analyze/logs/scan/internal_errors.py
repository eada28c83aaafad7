"""pytest's ``INTERNALERROR>`` blocks, with xdist's known bug named.

The lines of one block are gathered (the last 16 kept) until a line without the prefix, then
become one :class:`InternalError`: its exception, the frame it was raised in, and whether
xdist raised it (``KeyError: <WorkerController gwN>`` is pytest-dev/pytest-xdist#714).
"""

from __future__ import annotations

from collections import deque

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.findings import InternalError
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.logscan import LogScan, cap, exc_parts

XDIST_714 = "pytest-dev/pytest-xdist#714"


class InternalErrors:
    """The INTERNALERROR accumulator; :meth:`end` turns what it holds into a record."""

    def __init__(self, scan: LogScan) -> None:
        self.scan = scan
        self._lines: deque[str] = deque(maxlen=16)
        self._first = 0
        self._exc: tuple[str | None, str] | None = None
        self._where: str | None = None
        self._xdist = False

    def line(self, line: Line) -> bool:
        """An ``INTERNALERROR> ...`` line."""
        text = line.text
        match = P.INTERNALERROR.match(text)
        body = match.group("text") if match else text
        if body.startswith("Traceback (most recent") and self._lines:
            self.end()
        if not self._lines:
            self._first = line.lineno
        self._lines.append(cap(body, 200))
        frame = P.PY_FRAME.match(body)
        if frame:
            self._where = f"{frame.group('file')}:{frame.group('name')}"
            if "/xdist/" in frame.group("file") or "\\xdist\\" in frame.group("file"):
                self._xdist = True
            return True
        candidate = body.strip()
        if candidate.startswith("E ") and len(candidate) > 2:
            candidate = candidate[1:].strip()
        if body[:1] not in (" ", "\t") and P.EXC_LINE.match(candidate):
            self._exc = exc_parts(candidate)
        return True

    def end_unless_continued(self, text: str) -> None:
        """A line: unless it continues the open block, the block is whole."""
        if self._lines and not text.startswith("INTERNALERROR"):
            self.end()

    def xdist_frame(self, line: Line) -> bool:
        """An xdist frame just after an INTERNALERROR (pasted without the prefix) is its own."""
        errors = self.scan.internal_errors
        if not errors:
            return False
        last = errors[-1]
        frame = P.PY_FRAME.match(line.text)
        if frame is None or line.lineno - last.line > 40:
            return False  # not its frame: the other rules may want the line
        last.in_xdist = True
        last.where = f"{frame.group('file')}:{frame.group('name')}"
        if last.exc_type == "KeyError":
            last.ref = XDIST_714
        return True

    def end(self) -> None:
        if not self._lines:
            return
        exc_type, message = self._exc or (None, self._lines[-1].strip())
        xdist = self._xdist or "WorkerController" in message
        ref = XDIST_714 if exc_type == "KeyError" and xdist else None
        self.scan.add(
            self.scan.internal_errors,
            InternalError(
                exc_type,
                cap(message, 300),
                self._first,
                "\n".join(self._lines),
                self._where,
                ref,
                xdist,
            ),
        )
        self._lines.clear()
        self._exc, self._where, self._xdist = None, None, False
