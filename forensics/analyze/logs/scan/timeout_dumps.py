"""pytest-timeout's dumps: ``+++++ Timeout +++++`` banners and the ``Stack of`` each thread.

A dump names its test in the banner (xdist), or not at all (serial, printed live by the
thread method): then the open failure section or live-log section names it, and the silence
before the banner is how long the test hung.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.decorations import timestamp
from forensics.analyze.logs.findings import TimeoutDump
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.logscan import MAX_FRAMES, LogScan, cap
from forensics.analyze.logs.scan.sections import Sections
from forensics.analyze.logs.scan.time_figures import TimeFigures
from forensics.model import Frame, Stack


class TimeoutDumps:
    """The pytest-timeout block; the banner opens (and closes) it."""

    def __init__(
        self, scan: LogScan, blocks: Blocks, sections: Sections, figures: TimeFigures
    ) -> None:
        self.scan = scan
        self._blocks = blocks
        self._sections = sections
        self._figures = figures
        self._dump: TimeoutDump | None = None
        blocks.on_close(self._flush)

    def _flush(self) -> None:
        if self._dump is not None:
            self.scan.add(self.scan.timeouts, self._dump)
            self._dump = None

    def banner(self, line: Line) -> bool:
        """``++++ Timeout ++++`` (xdist's names the test): a dump begins, or the one open ends."""
        banner = P.TIMEOUT_BANNER.match(line.text)
        if not banner:
            return False
        self._start(banner.group("test") or self._sections.section, line)
        return True

    def stack_head(self, line: Line) -> bool:
        """``~~~ Stack of MainThread (140...) ~~~`` without a banner before it."""
        if not P.TIMEOUT_STACK.match(line.text):
            return False
        self._start(self._sections.section, line)
        self._read(line)
        return True

    def _start(self, test: str | None, line: Line) -> None:
        if self._dump is not None and self._blocks.handler == self._read:
            # The closing banner of the dump we are in.
            self._blocks.close()
            return
        self._blocks.open(self._read)
        section = self._sections.section
        # Serial, with live logs: the dump names no test, the live-log section does.
        test = test or (self._figures.live_test if section is None else None)
        self._dump = TimeoutDump(test, line.lineno, cap(line.text), line.worker)
        if section is None and line.prev is not None:
            # Printed live by the thread method: the silence before it is the hang's length.
            now, before = timestamp(line.raw), timestamp(line.prev)
            if now is not None and before is not None:
                self._dump.silent_s = round(max(0.0, now - before), 3)

    def _read(self, line: Line) -> bool:
        dump = self._dump
        if dump is None:
            return False
        text = line.text
        if P.TIMEOUT_BANNER.match(text):
            self._blocks.close()
            return True
        live_test = self._figures.live_test
        when = self._figures.live_time(line) if live_test is not None else None
        if live_test is not None and when is not None:
            # The test's own logging goes on while the timer's thread dumps.
            self.scan.times.add_live(live_test, when)
            return True
        head = P.TIMEOUT_STACK.match(text)
        if head:
            if len(dump.stacks) < 64:
                dump.stacks.append(
                    Stack(
                        pid=None,
                        thread=f"{head.group('thread')} ({head.group('tid')})",
                        method="pytest-timeout",
                    )
                )
            return True
        frame = P.PY_FRAME.match(text)
        if frame:
            if dump.stacks and len(dump.stacks[-1].frames) < MAX_FRAMES:
                dump.stacks[-1].frames.append(
                    Frame(frame.group("name"), frame.group("file"), int(frame.group("line")))
                )
            return True
        return bool(text[:1] in (" ", "\t") or not text.strip())
