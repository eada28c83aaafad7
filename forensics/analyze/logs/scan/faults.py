"""faulthandler dumps: ``Fatal Python error``, thread stacks, ``Timeout (0:05:00)!`` dumps.

Several xdist workers dying at once interleave their dumps line by line, and splice lines
together; the block keeps one :class:`FaultRecord` per ``Fatal Python error`` and gives each
thread header to the earliest record still without a current thread.  Other output inside a
dump (a worker's progress, xdist's report of the crash) is parsed as usual; the dump ends after
``FAULT_IDLE_LINES`` such lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.death_lines import windows_status
from forensics.analyze.logs.deaths import Deaths
from forensics.analyze.logs.decorations import strip
from forensics.analyze.logs.findings import FaultRecord
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.logscan import MAX_FRAMES, LogScan, cap
from forensics.analyze.logs.wraps import wrapped_fatal
from forensics.faultparse import FATAL_SIGNALS
from forensics.model import Frame, Stack

FAULT_IDLE_LINES = 8  # unrelated lines that close the open faulthandler blocks


class Faults:
    """The faulthandler block; :meth:`start` opens it, :meth:`read` reads it."""

    def __init__(
        self,
        scan: LogScan,
        blocks: Blocks,
        deaths: Deaths,
        dispatch: Callable[[Line], None],
    ) -> None:
        self.scan = scan
        self._blocks = blocks
        self._deaths = deaths
        self._dispatch = dispatch  # parses a line interleaved into a dump
        self._open: list[FaultRecord] = []
        self._stack: Stack | None = None
        self._idle = 0
        blocks.on_close(self._flush)

    def _flush(self) -> None:
        for record in self._open:
            self.scan.add(self.scan.faults, record)
        self._open = []
        self._stack = None

    def start(self, line: Line) -> bool:
        """A line that begins or continues a dump: a fatal error, a thread or stack header."""
        text = line.text
        if "Fatal Python error" in text or "Windows fatal exception" in text:
            # A child's dump in a test that then passed is no death of the run.
            self._deaths.watch(line.lineno, self._deaths.running("", line.prev))
        if self._blocks.handler != self.read:
            self._blocks.open(self.read)
        self.read(line)
        return True

    def wrapped_start(self, line: Line) -> bool:
        """The second half of a fatal header a console wrapped in two (:mod:`..wraps`)."""
        if line.prev is None or ": " not in line.text:
            return False
        joined = wrapped_fatal(strip(line.prev)[0], line.text)
        if joined is None:
            return False
        return self.start(replace(line, text=joined))

    def timeout_start(self, line: Line) -> bool:
        """``Timeout (0:05:00)!``: faulthandler's dump_traceback_later."""
        return bool(P.FH_TIMEOUT.match(line.text)) and self.start(line)

    def read(self, line: Line) -> bool:
        text = line.text
        fatal = P.FATAL.search(text)
        if fatal:
            self._fatal(line, fatal.group("what").strip())
            return True
        timeout = P.FH_TIMEOUT.match(text)
        if timeout:
            record = FaultRecord(
                None, None, line.lineno, cap(text), line.worker, timeout=timeout.group("after")
            )
            record.progress_file = timeout.group("file")  # the dots line the banner cut short
            self._open.append(record)
            self._stack, self._idle = None, 0
            return True
        self._recover_signal(text)
        head = P.FH_THREAD.search(text) or P.FH_STACK.match(text)
        if head:
            if not self._open:
                self._open.append(FaultRecord(None, None, line.lineno, cap(text), line.worker))
            groups = head.groupdict()
            tid = groups.get("tid") or "unknown"
            label = f"{tid} {groups['name']}" if groups.get("name") else tid
            state = "current" if groups.get("current") == "Current thread" else None
            self._stack = Stack(pid=None, thread=label, method="faulthandler", state=state)
            # Interleaved dumps: each record takes one "Current thread"; the earliest record
            # still without one is the one this header continues.
            record = next(
                (r for r in self._open if all(s.state != "current" for s in r.stacks)),
                self._open[-1],
            )
            if len(record.stacks) < 64:
                record.stacks.append(self._stack)
            self._idle = 0
            return True
        frame = P.FH_FRAME.match(text)
        if frame and self._stack is not None:
            if len(self._stack.frames) < MAX_FRAMES:
                num = frame.group("line")
                self._stack.frames.append(
                    Frame(
                        frame.group("name"),
                        frame.group("file"),
                        int(num) if num.isdigit() else None,
                    )
                )
            self._idle = 0
            return True
        if (
            not text.strip()
            or text.startswith("Extension modules:")
            or text.lstrip().startswith("<")
        ):
            return True
        if 'File "' in text or "most recent call first" in text or "hread 0x" in text:
            return True  # a frame or header mangled by interleaving: still inside the dump
        self._idle += 1
        if self._idle >= FAULT_IDLE_LINES:
            return False
        # Interleaved output (another worker's progress, xdist's report of this crash) inside
        # a dump: parse it as usual and keep the dump open unless the line opened a block.
        blocks = self._blocks
        block, blocks.handler = blocks.handler, None
        # The line before names the test.
        self._dispatch(Line(text, line.worker, line.lineno, line.raw, line.prev, True))
        if blocks.handler is None:
            blocks.handler = block
        return True

    def _fatal(self, line: Line, what: str) -> None:
        """``Fatal Python error: Segmentation fault``: a new record, with its signal."""
        known = P.FATAL_NAME.match(what)
        signal = None
        if known:
            what = known.group(0)
            signal = FATAL_SIGNALS.get(what)
        elif what.lower() in P.WINDOWS_FATAL:
            signal = P.WINDOWS_FATAL[what.lower()]
        elif what.startswith("code 0x") and (status := windows_status(what)):
            # "Windows fatal exception: code 0xc0000374": the status names the signal.
            signal, what = status[1], f"{what} ({status[2]})"
        elif P.FATAL_MESSAGE.match(what) and "most recent call first" not in what:
            signal = "SIGABRT"  # Py_FatalError() ends in abort()
        else:
            # Two workers writing at once spliced this line: the reason may still be in
            # it ("...gateway_base.pyAborted"), or come on a later line.
            spliced = P.FATAL_NAME.search(what)
            what = spliced.group(0) if spliced else ""
            signal = FATAL_SIGNALS.get(what)
        text = line.text
        lead = P.LEADING_NODEID.match(text)
        record = FaultRecord(
            what or "unknown (output interleaved)",
            signal,
            line.lineno,
            cap(text),
            line.worker,
            lead.group("test") if lead else None,
        )
        dots = None if lead else P.LEADING_FILE.match(text)
        record.progress_file = dots.group("file") if dots else None
        self._open.append(record)
        self._stack, self._idle = None, 0

    def _recover_signal(self, text: str) -> None:
        """Give a fatal record whose reason was spliced away the first reason seen after it."""
        pending = [r for r in self._open if r.fatal is not None and r.signal is None]
        if not pending:
            return
        name = P.FATAL_NAME.search(text)
        if name:
            what = name.group(0).replace("Floating-point", "Floating point")
            pending[0].fatal, pending[0].signal = what, FATAL_SIGNALS.get(what)
