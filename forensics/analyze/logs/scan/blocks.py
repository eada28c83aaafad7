"""One line as the scanner's parsers see it, and the one multi-line block open at a time.

A block (a faulthandler dump, a traceback, a pytest-timeout dump, a Rust backtrace, the
durations table, a live-log section) gets every line until its handler declines one or
``MAX_BLOCK_LINES`` have gone by.  Opening a block closes the one before, and closing flushes
the records the parsers were filling into the scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_BLOCK_LINES = 4000


@dataclass(slots=True)
class Line:
    """A line to parse: ``text`` without CI decorations, the xdist ``worker`` its prefix names."""

    text: str
    worker: str | None
    lineno: int
    raw: str  # as read, CI timestamp and all: what silences and live-log times are dated by
    prev: str | None  # the raw line before it
    # Parsed again on its own from inside a faulthandler dump; such a line's cancel or session
    # start is dated by its stripped text, as it always was (so, in practice, not dated).
    interleaved: bool = False

    @property
    def dated(self) -> str:
        """The text a cancel's silence and the session's start are dated by."""
        return self.text if self.interleaved else self.raw


# Takes the next line of its block; False when the line is not the block's (it ends there).
BlockHandler = Callable[[Line], bool]


class Blocks:
    """The open block's handler, and the flushes that close every parser's open record."""

    def __init__(self) -> None:
        self.handler: BlockHandler | None = None
        self._lines = 0
        self._flushes: list[Callable[[], None]] = []

    def on_close(self, flush: Callable[[], None]) -> None:
        """Call *flush* whenever blocks close (a parser keeps its open record until then)."""
        self._flushes.append(flush)

    def open(self, handler: BlockHandler) -> None:
        self.close()
        self.handler = handler
        self._lines = 0

    def close(self) -> None:
        self.handler = None
        for flush in self._flushes:
            flush()

    def feed(self, line: Line) -> bool:
        """Give *line* to the open block; False (the block closed) when it is not the block's."""
        handler = self.handler
        if handler is None:
            return False
        self._lines += 1
        if self._lines <= MAX_BLOCK_LINES and handler(line):
            return True
        self.close()
        return False
