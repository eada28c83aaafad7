"""Bare Python tracebacks outside pytest's report: a script or a child process that crashed.

``Traceback (most recent call last):`` opens a block that reads the frames and ends at the
exception line, whose type and message make the record's signature.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.findings import Traceback
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.logscan import MAX_FRAMES, LogScan, cap
from forensics.analyze.logs.signatures import normalize
from forensics.model import Frame


class Tracebacks:
    """The traceback block."""

    def __init__(self, scan: LogScan, blocks: Blocks) -> None:
        self.scan = scan
        self._blocks = blocks
        self._tb: Traceback | None = None
        blocks.on_close(self._flush)

    def _flush(self) -> None:
        if self._tb is not None:
            self.scan.add(self.scan.tracebacks, self._tb)
            self._tb = None

    def start(self, line: Line) -> bool:
        """``Traceback (most recent call last):`` at the start of a line."""
        if "Traceback (most" not in line.text:
            return False
        self._blocks.open(self._read)
        self._tb = Traceback(None, "", [], line.lineno, cap(line.text), "")
        return True

    def _read(self, line: Line) -> bool:
        tb = self._tb
        if tb is None:
            return False
        text = line.text
        frame = P.PY_FRAME.match(text)
        if frame:
            if len(tb.frames) < MAX_FRAMES:
                tb.frames.append(
                    Frame(frame.group("name"), frame.group("file"), int(frame.group("line")))
                )
            return True
        if not text.strip() or text[:1] in (" ", "\t"):
            return True
        if text.startswith(("During handling", "The above exception", "Traceback (most")):
            return True
        exc = P.EXC_LINE.match(text)
        if exc:
            tb.exc_type, tb.message = exc.group("type"), cap((exc.group("msg") or "").strip(), 300)
            tb.signature = normalize(f"{tb.exc_type}: {tb.message}")
            self._blocks.close()
            return True
        return False
