"""The figures of time a log holds: the ``--durations`` table, live-log sections, test starts.

These are figures, not events (:mod:`.timing` parses them; this reads them off the lines):
how long each test took, when a test's own logging last spoke, when each test began.  The
live-log section also names the test a serial pytest-timeout dump belongs to.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs import timing
from forensics.analyze.logs.decorations import strip
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.logscan import LogScan


class TimeFigures:
    """The durations table and live-log blocks; :attr:`live_test` is the open section's test."""

    def __init__(self, scan: LogScan, blocks: Blocks) -> None:
        self.scan = scan
        self._blocks = blocks
        self.live_test: str | None = None  # the test whose live-log section is open
        self.live_ci_times = False  # the open live-log section's lines carry a CI time first
        self._starts_noted = 0

    def durations_header(self, line: Line) -> bool:
        """``==== slowest 10 durations ====``: the table follows."""
        if not timing.DURATIONS_HEADER.match(line.text):
            return False
        self._blocks.open(self._duration_row)
        return True

    def _duration_row(self, line: Line) -> bool:
        text = line.text
        match = timing.DURATION_ROW.match(text)
        if match is not None:
            row = timing.row_figures(match)
            if row is not None:
                self.scan.times.add_duration(*row)
            return True
        return not text.strip() or bool(timing.DURATIONS_HIDDEN.match(text))

    def live_log_header(self, line: Line) -> bool:
        """``---- live log call ----``: the records after it are the announced test's."""
        phase = timing.live_log_phase(line.text)
        if phase is None:
            return False
        prev = line.prev
        announced = timing.announced_test(strip(prev)[0] if prev else None)
        self.live_test = announced or self.live_test
        if phase not in ("sessionstart", "sessionfinish", "collection"):
            # A header printed after a time is under a CI system's per-line time (Jenkins'
            # timestamper): every line starts with one, so the record's own time, if it
            # has one, comes after it.
            self.live_ci_times = timing.live_log_time(line.raw) is not None
            self._blocks.open(self._live_log_record)
        return True

    def live_time(self, line: Line) -> float | None:
        """The time of a live-log record (under a CI time, the record's own)."""
        return timing.live_log_time(line.text if self.live_ci_times else line.raw)

    def _live_log_record(self, line: Line) -> bool:
        text = line.text
        if P.TRIGGER.search(text):
            return False  # a fault dump or a death is never a logging record
        when = self.live_time(line)
        if when is not None:
            if self.live_test is not None:
                self.scan.times.add_live(self.live_test, when)
            return True
        # A logged traceback or a multi-line message continues the record.
        if text[:1] in (" ", "\t") or text.startswith(("Traceback (most", "During handling")):
            return True
        if text.startswith(timing.RESULT_WORDS):
            self.live_test = None  # the test is over: a later dump is not its
        return False

    @property
    def wants_starts(self) -> bool:
        """Whether a node-down line still gets a look back for test starts: only the first
        few do, so a run that loses hundreds of workers does not cost one each."""
        return self._starts_noted < timing.MAX_START_LOOKBACKS

    def note_starts(self, window: str) -> None:
        """Date the tests announced in *window*, the log just before a node-down line."""
        if not self.wants_starts:
            return
        self._starts_noted += 1
        for test, when in timing.test_starts(window[-timing.STARTS_WINDOW :]):
            self.scan.times.add_start(test, when)
