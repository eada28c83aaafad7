"""The streaming line scanner: trigger lines in, findings (:class:`LogScan`) out.

Only lines that hit :data:`patterns.TRIGGER` are parsed, except while a multi-line block
(faulthandler dump, traceback, pytest-timeout dump, Rust backtrace) is open, when every line
is fed until the block ends.  Every list is bounded, so memory does not grow with the log.

Each kind of record has its parser in a module of its own; :mod:`.dispatch` is the table
that sends a line to them, and :class:`Scanner` feeds lines to the open block, the failure
section and the deaths being read before the table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.deaths import Deaths
from forensics.analyze.logs.decorations import LogDecorations, strip, timestamp
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.dispatch import dispatch, rules
from forensics.analyze.logs.scan.faults import Faults
from forensics.analyze.logs.scan.header import Header
from forensics.analyze.logs.scan.internal_errors import InternalErrors
from forensics.analyze.logs.scan.kill_lines import Kills
from forensics.analyze.logs.scan.last_words import NativeAborts
from forensics.analyze.logs.scan.logscan import LogScan
from forensics.analyze.logs.scan.sections import Sections
from forensics.analyze.logs.scan.time_figures import TimeFigures
from forensics.analyze.logs.scan.timeout_dumps import TimeoutDumps
from forensics.analyze.logs.scan.tracebacks import Tracebacks
from forensics.analyze.logs.scan.workers import Workers

__all__ = ["MAX_LINE", "LogScan", "Scanner", "scan_lines"]

MAX_LINE = 64 << 10  # characters of one line that are looked at


class Scanner:
    """Feed it lines; read :attr:`scan`.  ``wants_all`` is true while a block is open."""

    def __init__(self, source: str) -> None:
        self._decorations = LogDecorations()  # learns the log's Jenkins gap: indents stay
        scan = self.scan = LogScan(source=source)
        self._blocks = blocks = Blocks()
        # Shell, runner and runtime deaths, and the test running at each (logs/deaths.py).
        self._deaths = deaths = Deaths(scan, scan.add)
        kills = Kills(scan, deaths)
        self._sections = sections = Sections(scan, deaths, kills.infra)
        self._internal = internal = InternalErrors(scan)
        self._figures = figures = TimeFigures(scan, blocks)
        self._workers = workers = Workers(scan)
        # The order blocks flush in on closing: faults, tracebacks, timeouts, natives.
        faults = Faults(scan, blocks, deaths, self._dispatch)
        tracebacks = Tracebacks(scan, blocks)
        timeouts = TimeoutDumps(scan, blocks, sections, figures)
        natives = NativeAborts(scan, blocks, deaths)
        self._rules = rules(
            internal=internal,
            faults=faults,
            timeouts=timeouts,
            workers=workers,
            sections=sections,
            natives=natives,
            figures=figures,
            kills=kills,
            tracebacks=tracebacks,
            header=Header(scan),
        )
        # worker -> epoch time of its last line before the one being fed (set by the reader,
        # which can look back in its buffer; the scanner itself sees trigger lines only)
        self.worker_last_seen = workers.last_seen

    @property
    def wants_all(self) -> bool:
        return (
            self._blocks.handler is not None
            or self._deaths.wants_lines
            or self._sections.follow > 0
        )

    @property
    def wants_starts(self) -> bool:
        """Whether a node-down line still gets a look back for test starts (the first few)."""
        return self._figures.wants_starts

    def note_starts(self, window: str) -> None:
        """Date the tests announced in *window*, the log just before a node-down line."""
        self._figures.note_starts(window)

    def feed(self, raw: str, lineno: int, prev: str | None = None) -> None:
        """Parse one line.  ``prev`` (the raw line before it) dates silences before cancels.

        A line that matches a pattern but not its parser's expectations (a mangled number)
        is noted and skipped: one bad line must not cost the rest of the log.
        """
        try:
            self._feed(raw, lineno, prev)
        except (ValueError, IndexError, OverflowError) as exc:
            if len(self.scan.notes) < 20:
                self.scan.notes.append(f"{self.scan.source}:{lineno}: line not understood ({exc})")

    def _feed(self, raw: str, lineno: int, prev: str | None) -> None:
        self.scan.lines = max(self.scan.lines, lineno)
        text, worker = self._decorations.strip(raw)
        blocks, deaths, sections = self._blocks, self._deaths, self._sections
        if sections.follow > 0:
            sections.follow_line(text)
            if blocks.handler is None and not deaths.wants_lines and not P.TRIGGER.search(raw):
                return  # read for the section only, as if the reader had skipped it
        if deaths.wants_lines:
            if deaths.follow(text, lineno):
                return
            watched_only = blocks.handler is None and not deaths.wants_dispatch
            if watched_only and not P.TRIGGER.search(raw):
                return  # read for a death's result only, as if the reader had skipped it
        line = Line(text, worker, lineno, raw, prev)
        if blocks.feed(line):
            return
        self._internal.end_unless_continued(text)
        dispatch(self._rules, line)

    def _dispatch(self, line: Line) -> None:
        dispatch(self._rules, line)

    def finish(self) -> LogScan:
        """Close open blocks and fill what the end of the log decides."""
        self._blocks.close()
        self._internal.end()
        self._deaths.settle()  # deaths the tests survived become notes
        self._sections.finish()
        return self.scan


def scan_lines(lines: Iterable[str], source: str) -> LogScan:
    """Scan already-read text lines (e.g. a bundle's ``output.log``); see :class:`LogScan`."""
    scanner = Scanner(source)
    trigger = P.TRIGGER.search
    prev: str | None = None
    lineno = 0
    own_lines: dict[str, str] = {}  # worker -> its last line of its own, as the reader finds
    recent: deque[str] = deque(maxlen=4000)  # for the tests announced before a node-down
    for lineno, line in enumerate(lines, 1):
        line = line[:MAX_LINE]  # the same bound the byte reader keeps
        if scanner.wants_all or trigger(line):
            if "node down" in line:
                down = P.NODE_DOWN.search(line)
                own = own_lines.get(down.group("worker") or "") if down else None
                when = timestamp(own) if own is not None else None
                if down and when is not None:
                    scanner.worker_last_seen[down.group("worker")] = when
                if scanner.wants_starts:
                    scanner.note_starts("".join(recent))
            scanner.feed(line, lineno, prev)
        if "[gw" in line[:80]:
            worker = strip(line)[1]
            if worker is not None:
                own_lines[worker] = line
        prev = line
        recent.append(line if line.endswith("\n") else line + "\n")
    scanner.scan.lines = max(scanner.scan.lines, lineno)
    return scanner.finish()
