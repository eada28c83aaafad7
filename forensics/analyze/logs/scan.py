"""The streaming line scanner: trigger lines in, findings (:class:`LogScan`) out.

Only lines that hit :data:`patterns.TRIGGER` are parsed, except while a multi-line block
(faulthandler dump, traceback, pytest-timeout dump, Rust backtrace) is open, when every line
is fed until the block ends.  Every list is bounded, so memory does not grow with the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs import timing
from forensics.analyze.logs.deaths import Deaths, windows_status
from forensics.analyze.logs.decorations import strip, timestamp
from forensics.analyze.logs.findings import (
    CrashedItem,
    FaultRecord,
    InfraError,
    InternalError,
    KillEvent,
    NativeAbort,
    NodeDown,
    ProgressResult,
    PythonFailure,
    SessionHeader,
    Summary,
    TimeoutDump,
    Traceback,
    WorkerEvent,
)
from forensics.analyze.logs.fragments import caught_panic, loose_failure
from forensics.analyze.logs.kernel import KernelFault, kernel_fault
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.logs.wraps import wrapped_fatal
from forensics.faultparse import FATAL_SIGNALS
from forensics.model import Frame, Stack, TestCounts

T = TypeVar("T")

MAX_LINE = 64 << 10  # characters of one line that are looked at
MAX_RECORDS = 2000  # per kind; past this only the count grows
MAX_FRAMES = 256
MAX_EXCERPT = 400
MAX_BLOCK_LINES = 4000
FAULT_IDLE_LINES = 8  # unrelated lines that close the open faulthandler blocks
# Lines after a failure section's title (or a stray "E" line) read for the test's file, its
# "def test_..." and a frame's "raise"; the next section or the summary ends the window first.
SECTION_FOLLOW_LINES = 300
XDIST_714 = "pytest-dev/pytest-xdist#714"


@dataclass
class LogScan:
    """Everything the scanner found in one source, in log order within each list.

    Fields:
      source: the path (or label) the lines came from; evidence cites ``source:LINE``.
      lines: number of lines seen.
      node_downs: xdist ``[gwN] node down: <reason>`` lines.
      crashed_items: ``worker 'gwN' crashed while running '<test>'``: which test each dead
        worker was running.
      progress: per-test FAILED/ERROR result lines, with the worker when xdist names it (the
        test a worker was running when it died, when the session ended before its report).
      worker_events: ``replacing crashed worker gwN`` / ``maximum crashed workers reached``.
      faults: faulthandler blocks (fatal errors with the signal, and plain thread dumps such
        as ``faulthandler_timeout``), with their thread stacks; interleaved blocks of several
        workers are kept apart as well as the text allows.
      internal_errors: pytest ``INTERNALERROR>`` blocks, with ``ref`` set for known upstream
        bugs (xdist#714 ``KeyError: <WorkerController gwN>``).
      failures: failed/errored tests with exception type, message and normalized signature,
        from the short test summary (messages completed from the failure sections).
      tracebacks: bare Python tracebacks outside pytest's reports (a crashing script).
      timeouts: pytest-timeout dumps and ``Failed: Timeout`` results (hangs).
      native_aborts: Rust panics, Rust ``fatal runtime error``, C++ ``terminate called``.
      kills: kernel OOM lines, shell ``Killed``/``Segmentation fault`` reports, exit codes,
        CI cancellations (with the silence before them when timestamps tell).
      infra: network/registry failure lines (bounded; ``infra_count`` has the total).
      summary: the pytest result counts, summed over every session in the log.
      exit_code: the last exit code the log reports (``Process completed with exit code N``).
      rootdir: pytest's ``rootdir:``, to turn absolute frame paths into node ids.
      header: the session header (python, platform, plugins, pytest-timeout's timeout and
        method, xdist's worker count, when the tests began).
      times: per-test figures of time (``--durations`` table, JUnit ``time``, the limit a
        ``Timeout (>Ns)`` failure names, live-log times); see :mod:`timing`.
      kernel_faults: the kernel's segfault and trap lines (a pasted ``dmesg``).
      dropped: records not kept because a list was full.
    """

    source: str
    lines: int = 0
    node_downs: list[NodeDown] = field(default_factory=list)
    crashed_items: list[CrashedItem] = field(default_factory=list)
    worker_events: list[WorkerEvent] = field(default_factory=list)
    progress: list[ProgressResult] = field(default_factory=list)
    faults: list[FaultRecord] = field(default_factory=list)
    internal_errors: list[InternalError] = field(default_factory=list)
    failures: list[PythonFailure] = field(default_factory=list)
    tracebacks: list[Traceback] = field(default_factory=list)
    timeouts: list[TimeoutDump] = field(default_factory=list)
    native_aborts: list[NativeAbort] = field(default_factory=list)
    kills: list[KillEvent] = field(default_factory=list)
    infra: list[InfraError] = field(default_factory=list)
    infra_count: int = 0
    summary: Summary | None = None
    exit_code: int | None = None
    rootdir: str | None = None
    header: SessionHeader = field(default_factory=SessionHeader)
    times: timing.TestTimes = field(default_factory=timing.TestTimes)
    kernel_faults: list[KernelFault] = field(default_factory=list)
    dropped: int = 0
    notes: list[str] = field(default_factory=list)


def _cap(text: str, limit: int = MAX_EXCERPT) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exc_parts(text: str) -> tuple[str | None, str]:
    match = P.EXC_LINE.match(text.strip())
    if not match:
        return None, text.strip()
    return match.group("type"), (match.group("msg") or "").strip()


def _section_key(test: str) -> str:
    # "path/test_x.py::TestA::test_b[1]" -> "TestA.test_b[1]", the failure-section title.
    return test.split("::", 1)[1].replace("::", ".") if "::" in test else test


class Scanner:
    """Feed it lines; read :attr:`scan`.  ``wants_all`` is true while a block is open."""

    def __init__(self, source: str) -> None:
        self.scan = LogScan(source=source)
        self._block: Callable[[str, str | None, int], bool] | None = None
        # faulthandler state
        self._open_faults: list[FaultRecord] = []
        self._stack: Stack | None = None
        self._idle = 0
        self._block_lines = 0
        # INTERNALERROR accumulator
        self._ie_lines: deque[str] = deque(maxlen=16)
        self._ie_first = 0
        self._ie_exc: tuple[str | None, str] | None = None
        self._ie_where: str | None = None
        self._ie_xdist = False
        # traceback / timeout / native accumulators
        self._tb: Traceback | None = None
        self._timeout: TimeoutDump | None = None
        self._native: NativeAbort | None = None
        self._native_wait = 0
        # failure sections: title -> (exc_type, message, phase); bounded
        self._section: str | None = None
        self._section_phase: str | None = None
        self._section_exc: dict[str, tuple[str | None, str, str | None]] = {}
        # Read in the window after a section title: the test's file (its location line), the
        # exception a ">" frame raises (for a section whose "E" lines the excerpt lost).
        self._follow = 0
        self._section_file: dict[str, str] = {}
        self._section_raise: dict[str, tuple[str | None, str, str | None]] = {}
        self._def_name: str | None = None
        # An "E" line outside any section (an excerpt cut into one): (type, message, line, text).
        self._loose: tuple[str, str, int, str] | None = None
        self._summary_seen = False
        # worker -> epoch time of its last line before the one being fed (set by the reader,
        # which can look back in its buffer; the scanner itself sees trigger lines only)
        self.worker_last_seen: dict[str, float] = {}
        self._raw: str = ""
        self._prev: str | None = None
        self._live_test: str | None = None  # the test whose live-log section is open
        self._live_ci_times = False  # the open live-log section's lines carry a CI time first
        self._starts_noted = 0
        # Shell, runner and runtime deaths, and the test running at each (logs/deaths.py).
        self._deaths = Deaths(self.scan, self._add)

    @property
    def wants_all(self) -> bool:
        return self._block is not None or self._deaths.wants_lines or self._follow > 0

    # -- plumbing ---------------------------------------------------------------------------
    def _add(self, items: list[T], item: T) -> None:
        if len(items) < MAX_RECORDS:
            items.append(item)
        else:
            self.scan.dropped += 1

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
        # The raw line and the one before, for dating what a block handler re-dispatches.
        self._raw, self._prev = raw, prev
        text, worker = strip(raw)
        if self._follow > 0:
            self._follow -= 1
            self._follow_line(text)
            if self._block is None and not self._deaths.wants_lines and not P.TRIGGER.search(raw):
                return  # read for the section only, as if the reader had skipped it
        if self._deaths.wants_lines:
            if self._deaths.follow(text, lineno):
                return
            watched_only = self._block is None and not self._deaths.wants_dispatch
            if watched_only and not P.TRIGGER.search(raw):
                return  # read for a death's result only, as if the reader had skipped it
        if self._block is not None:
            self._block_lines += 1
            if self._block_lines <= MAX_BLOCK_LINES and self._block(text, worker, lineno):
                return
            self._close_blocks()
        if self._ie_lines and not text.startswith("INTERNALERROR"):
            self._finish_internal()
        self._dispatch(text, worker, lineno, raw, prev)

    def finish(self) -> LogScan:
        """Close open blocks and fill what the end of the log decides."""
        self._close_blocks()
        self._finish_internal()
        self._deaths.settle()  # deaths the tests survived become notes
        if not self._summary_seen:
            # No short summary (output cut, -rN): the failure sections still name the tests.
            titles = list(dict.fromkeys([*self._section_exc, *self._section_raise]))
            for title in titles[:MAX_RECORDS]:
                info = self._section_info(title)
                if info is None:
                    continue
                exc_type, message, phase = info
                self._failure(
                    self._section_test(title),
                    "error" if phase else "failed",
                    exc_type,
                    message,
                    0,
                    "",
                    None,
                    phase,
                )
        part = loose_failure(self.scan, self._loose) or caught_panic(self.scan)
        if part is not None:  # an excerpt's partial failure, and nothing else (logs/fragments.py)
            args = (part.exc_type, part.message, part.line, part.excerpt, part.worker, None)
            self._failure(part.test, "failed", *args)
        return self.scan

    # -- failure sections -----------------------------------------------------------------------
    def _follow_line(self, text: str) -> None:
        """A line in a failure section: its test's file and def, a frame's raise."""
        if text.startswith(("___", "===")):
            self._follow = 0  # the next section or the summary: this one ended
            return
        if "def test" in text:
            match = P.TEST_DEF.match(text)
            if match:
                self._def_name = match.group("name")
            return
        if text.startswith(">"):
            raised = P.RAISE_LINE.match(text)
            section = self._section
            if raised and section is not None and len(self._section_raise) < MAX_RECORDS:
                args = raised.group("args").strip()
                if len(args) >= 2 and args[0] == args[-1] and args[0] in "'\"":
                    args = args[1:-1]  # one string literal: the message itself
                self._section_raise[section] = (
                    raised.group("type"),
                    _cap(args, 300),
                    self._section_phase,
                )
            return
        if ".py:" not in text:
            return
        loc = P.LOCATION.match(text)
        if loc is None or not P.TEST_FILE.search(loc.group("file")):
            return
        file = loc.group("file")
        if self._section is not None:
            if self._section not in self._section_file and len(self._section_file) < MAX_RECORDS:
                self._section_file[self._section] = file
        elif self._loose is not None and self._def_name is not None:
            # The stray E line and this entry are one section (no title came between): the
            # test that raised it is this file's function.
            exc_type, message, lineno, line = self._loose
            self._loose = None
            self._failure(
                f"{file}::{self._def_name}", "failed", exc_type, message, lineno, line, None, None
            )

    def _section_info(self, title: str) -> tuple[str | None, str, str | None] | None:
        """A section's exception: its E line, else the exception its last ">" frame raises."""
        return self._section_exc.get(title) or self._section_raise.get(title)

    def _section_test(self, title: str) -> str:
        """A section title as a node id, when the section's location lines name its file."""
        file = self._section_file.get(title)
        if file is None or "::" in title:
            return title
        name, bracket, params = title.partition("[")
        return f"{file}::{name.replace('.', '::')}{bracket}{params}"

    def _open(self, handler: Callable[[str, str | None, int], bool]) -> None:
        self._close_blocks()
        self._block = handler
        self._block_lines = 0

    def _close_blocks(self) -> None:
        self._block = None
        for record in self._open_faults:
            self._add(self.scan.faults, record)
        self._open_faults = []
        self._stack = None
        if self._tb is not None:
            self._add(self.scan.tracebacks, self._tb)
            self._tb = None
        if self._timeout is not None:
            self._add(self.scan.timeouts, self._timeout)
            self._timeout = None
        if self._native is not None:
            self._add(self.scan.native_aborts, self._native)
            self._native = None

    # -- dispatch ---------------------------------------------------------------------------
    def _dispatch(
        self, text: str, worker: str | None, lineno: int, raw: str, prev: str | None
    ) -> None:
        scan = self.scan
        if text.startswith("INTERNALERROR"):
            self._internal(text, lineno)
            return
        if "Fatal Python error" in text or "Windows fatal exception" in text:
            self._fault_start(text, worker, lineno)
            return
        if prev and ": " in text and (joined := wrapped_fatal(strip(prev)[0], text)):
            self._fault_start(joined, worker, lineno)  # a console wrap split the header
            return
        if "hread 0x" in text or text.startswith("Stack (most recent"):
            self._fault_start(text, worker, lineno)
            return
        if "Timeout (" in text and P.FH_TIMEOUT.match(text):
            self._fault_start(text, worker, lineno)
            return
        if "Timeout +" in text:
            banner = P.TIMEOUT_BANNER.match(text)
            if banner:
                self._timeout_start(banner.group("test") or self._section, worker, lineno, text)
                return
        if "Stack of " in text:
            head = P.TIMEOUT_STACK.match(text)
            if head:
                self._timeout_start(self._section, worker, lineno, text)
                self._timeout_line(text, worker, lineno)
                return
        if "node down" in text:
            match = P.NODE_DOWN.search(text)
            if match:
                self._add(
                    scan.node_downs,
                    self._timed(
                        NodeDown(
                            worker or match.group("worker"),
                            match.group("reason").strip(),
                            lineno,
                            _cap(text),
                        ),
                        at_start=match.start() == 0,
                    ),
                )
                return
        if text.startswith(("FAILED", "ERROR")):
            self._short_result(text, worker, lineno)
            return
        if "crashed while running" in text:
            match = P.CRASHED_ITEM.search(text)
            if match:
                self._add(
                    scan.crashed_items,
                    CrashedItem(match.group("worker"), match.group("test"), lineno, _cap(text)),
                )
                return
        if "crashed worker" in text or "crashed slave" in text:
            rep = P.REPLACING.search(text)
            top = P.MAX_CRASHED.search(text)
            if rep or top:
                kind = "replaced" if rep else "max-crashed"
                who = rep.group("worker") if rep else None
                # xdist repeats "maximum crashed workers reached" in the summary banner.
                if kind == "replaced" or all(e.kind != kind for e in scan.worker_events):
                    self._add(scan.worker_events, WorkerEvent(kind, who, lineno, _cap(text)))
                return
        if "panicked at" in text:
            panic = P.RUST_PANIC.search(text)
            if panic:
                loc = panic.group("loc")
                crate = P.CRATE.search(loc)
                self._open(self._native_line)  # first: opening flushes the previous block
                self._native = NativeAbort(
                    "rust-panic",
                    panic.group("oldmsg") or "",
                    lineno,
                    _cap(text),
                    library=crate.group("crate") if crate else f"rust ({loc})",
                    worker=worker,
                    location=loc,
                    test=self._deaths.running(text[: panic.start()], prev),
                )
                self._native_wait = 0
                self._deaths.watch(lineno, self._native.test)  # a caught panic, the test passed
                return
        if "fatal runtime error" in text:
            fatal = P.FATAL_RUNTIME.search(text)
            if fatal:
                self._add(
                    scan.native_aborts,
                    NativeAbort(
                        "rust-fatal",
                        fatal.group("what"),
                        lineno,
                        _cap(text),
                        library="rust runtime",
                        worker=worker,
                    ),
                )
                self._deaths.watch(lineno)
                return
        if "terminate called" in text:
            term = P.CPP_TERMINATE.search(text)
            if term:
                what = term.group("type") or (term.group("other") or "").strip()
                self._open(self._native_line)
                self._native = NativeAbort(
                    "cpp-terminate",
                    what,
                    lineno,
                    _cap(text),
                    library="libstdc++ (std::terminate)",
                    worker=worker,
                    signal="SIGABRT",
                    test=self._deaths.running(text[: term.start()], prev),
                )
                self._native_wait = 0
                self._deaths.watch(lineno, self._native.test)
                return
        if self._timing(text, lineno, prev):
            return
        if self._deaths.line(text, worker, lineno, prev):
            # Printed in a failure's captured output: that test ran the process that died.
            section = self._section
            self._deaths.in_section(
                None if self._summary_seen or section is None else self._section_test(section)
            )
            return
        if self._kill(text, lineno, raw, prev):
            return
        if text.startswith("E ") or text.startswith("E\t"):
            self._e_line(text, lineno)
            return
        if text.startswith("___"):
            head = P.SECTION_HEADER.match(text)
            if head:
                self._section = head.group("name")
                self._section_phase = head.group("phase") or (
                    "collect" if head.group("err") and "collecting" in text else None
                )
                self._follow, self._def_name = SECTION_FOLLOW_LINES, None
                return
        if "== " in text:
            self._summary_line(text, lineno)
            return
        if "FAILED" in text or "ERROR" in text:
            prog = P.PROGRESS_RESULT.match(text)
            if prog:
                test = prog.group("test") or prog.group("test2")
                kind = prog.group("kind") or prog.group("kind2")
                self._add(scan.progress, ProgressResult(worker, test, kind, lineno))
                return
            tagged = P.PREFIXED_RESULT.search(text) if worker is None and "[gw" in text else None
            if tagged:
                self._add(
                    scan.progress,
                    ProgressResult(
                        tagged.group("worker"), tagged.group("test"), tagged.group("kind"), lineno
                    ),
                )
                return
        if "Traceback (most" in text and text.startswith("Traceback"):
            self._open(self._tb_line)
            self._tb = Traceback(None, "", [], lineno, _cap(text), "")
            return
        if "xdist/" in text and self.scan.internal_errors:
            self._xdist_frame(text, lineno)
            return
        if text.startswith("rootdir: "):
            root = P.ROOTDIR.match(text)
            if root:
                scan.rootdir = root.group("dir").rstrip(",")
                return
        if self._header(text, lineno, raw):
            return
        if P.INFRA.search(text):
            self._infra(text, lineno)

    # -- the session header and timing -------------------------------------------------------
    def _header(self, text: str, lineno: int, raw: str) -> bool:
        head = self.scan.header
        if text.startswith("platform "):
            match = P.HEADER_PLATFORM.match(text)
            if match:
                head.platform, head.python = match.group("platform"), match.group("python")
                head.pytest = match.group("pytest")
        elif text.startswith("plugins: "):
            match = P.HEADER_PLUGINS.match(text)
            if match:
                head.plugins_seen = True
                for item in P.HEADER_PLUGIN.finditer(match.group("list")):
                    head.plugins[item.group("name")] = item.group("version")
        elif text.startswith("timeout: "):
            match = P.HEADER_TIMEOUT.match(text)
            if match:
                head.timeout_s = float(match.group("secs"))
        elif text.startswith("timeout method: "):
            match = P.HEADER_TIMEOUT_METHOD.match(text)
            if match:
                head.timeout_method = match.group("method")
        elif text.startswith("created: "):
            match = P.HEADER_CREATED.match(text)
            if match:
                head.workers = int(match.group("total"))
        else:
            match = P.HEADER_BEGIN.match(text)
            if match:
                head.workers = head.workers or int(match.group("workers"))
                head.began = timestamp(raw)
        if match is None:
            return False
        if len(head.lines) < 16:
            head.lines.append((lineno, _cap(text, 200)))
        return True

    def _timing(self, text: str, lineno: int, prev: str | None) -> bool:
        """The durations table, a live-log section, a kernel fault line: figures, not events."""
        if "durations" in text and timing.DURATIONS_HEADER.match(text):
            self._open(self._durations_line)
            return True
        if "live log" in text:
            phase = timing.live_log_phase(text)
            if phase is None:
                return False
            self._live_test = timing.announced_test(strip(prev)[0] if prev else None) or (
                self._live_test
            )
            if phase not in ("sessionstart", "sessionfinish", "collection"):
                # A header printed after a time is under a CI system's per-line time (Jenkins'
                # timestamper): every line starts with one, so the record's own time, if it
                # has one, comes after it.
                self._live_ci_times = timing.live_log_time(self._raw) is not None
                self._open(self._live_log_line)
            return True
        if "segfault at " in text or "traps: " in text:
            fault = kernel_fault(text, lineno, _cap(text))
            if fault is not None:
                self._add(self.scan.kernel_faults, fault)
                return True
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

    def _durations_line(self, text: str, worker: str | None, lineno: int) -> bool:
        match = timing.DURATION_ROW.match(text)
        if match is not None:
            row = timing.row_figures(match)
            if row is not None:
                self.scan.times.add_duration(*row)
            return True
        return not text.strip() or bool(timing.DURATIONS_HIDDEN.match(text))

    def _live_log_line(self, text: str, worker: str | None, lineno: int) -> bool:
        if P.TRIGGER.search(text):
            return False  # a fault dump or a death is never a logging record
        when = timing.live_log_time(text if self._live_ci_times else self._raw)
        if when is not None:
            if self._live_test is not None:
                self.scan.times.add_live(self._live_test, when)
            return True
        # A logged traceback or a multi-line message continues the record.
        if text[:1] in (" ", "\t") or text.startswith(("Traceback (most", "During handling")):
            return True
        if text.startswith(timing.RESULT_WORDS):
            self._live_test = None  # the test is over: a later dump is not its
        return False

    def _timed(self, down: NodeDown, at_start: bool) -> NodeDown:
        """Date a node-down line and measure the worker's silence before it, where it can be."""
        raw, prev = self._raw, self._prev
        now = timestamp(raw)
        if now is None:
            return down
        down.time = now
        began = self.scan.header.began
        if began is not None:
            down.since_begin_s = round(max(0.0, now - began), 3)
        seen = self.worker_last_seen.get(down.worker or "")
        if seen is not None:
            down.silent_s, down.silent_of = round(max(0.0, now - seen), 3), "worker"
        elif at_start and prev is not None:
            # Nothing else on this line: the log was silent since the line before.
            before = timestamp(prev)
            if before is not None:
                down.silent_s, down.silent_of = round(max(0.0, now - before), 3), "log"
        return down

    # -- INTERNALERROR ------------------------------------------------------------------------
    def _internal(self, text: str, lineno: int) -> None:
        match = P.INTERNALERROR.match(text)
        body = match.group("text") if match else text
        if body.startswith("Traceback (most recent") and self._ie_lines:
            self._finish_internal()
        if not self._ie_lines:
            self._ie_first = lineno
        self._ie_lines.append(_cap(body, 200))
        frame = P.PY_FRAME.match(body)
        if frame:
            self._ie_where = f"{frame.group('file')}:{frame.group('name')}"
            if "/xdist/" in frame.group("file") or "\\xdist\\" in frame.group("file"):
                self._ie_xdist = True
            return
        candidate = body.strip()
        if candidate.startswith("E ") and len(candidate) > 2:
            candidate = candidate[1:].strip()
        if body[:1] not in (" ", "\t") and P.EXC_LINE.match(candidate):
            self._ie_exc = _exc_parts(candidate)

    def _xdist_frame(self, text: str, lineno: int) -> None:
        """An xdist frame just after an INTERNALERROR (pasted without the prefix) is its own."""
        last = self.scan.internal_errors[-1]
        frame = P.PY_FRAME.match(text)
        if frame is None or lineno - last.line > 40:
            return
        last.in_xdist = True
        last.where = f"{frame.group('file')}:{frame.group('name')}"
        if last.exc_type == "KeyError":
            last.ref = XDIST_714

    def _finish_internal(self) -> None:
        if not self._ie_lines:
            return
        exc_type, message = self._ie_exc or (None, self._ie_lines[-1].strip())
        where = self._ie_where
        xdist = self._ie_xdist or "WorkerController" in message
        ref = XDIST_714 if exc_type == "KeyError" and xdist else None
        self._add(
            self.scan.internal_errors,
            InternalError(
                exc_type,
                _cap(message, 300),
                self._ie_first,
                "\n".join(self._ie_lines),
                where,
                ref,
                xdist,
            ),
        )
        self._ie_lines.clear()
        self._ie_exc, self._ie_where, self._ie_xdist = None, None, False

    # -- faulthandler -------------------------------------------------------------------------
    def _fault_start(self, text: str, worker: str | None, lineno: int) -> None:
        if "Fatal Python error" in text or "Windows fatal exception" in text:
            # A child's dump in a test that then passed is no death of the run.
            self._deaths.watch(lineno, self._deaths.running("", self._prev))
        if self._block != self._fault_line:
            self._open(self._fault_line)
        self._fault_line(text, worker, lineno)

    def _fault_line(self, text: str, worker: str | None, lineno: int) -> bool:
        fatal = P.FATAL.search(text)
        if fatal:
            what = fatal.group("what").strip()
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
            lead = P.LEADING_NODEID.match(text)
            record = FaultRecord(
                what or "unknown (output interleaved)",
                signal,
                lineno,
                _cap(text),
                worker,
                lead.group("test") if lead else None,
            )
            dots = None if lead else P.LEADING_FILE.match(text)
            record.progress_file = dots.group("file") if dots else None
            self._open_faults.append(record)
            self._stack, self._idle = None, 0
            return True
        timeout = P.FH_TIMEOUT.match(text)
        if timeout:
            record = FaultRecord(
                None, None, lineno, _cap(text), worker, timeout=timeout.group("after")
            )
            record.progress_file = timeout.group("file")
            self._open_faults.append(record)
            self._stack, self._idle = None, 0
            return True
        self._recover_signal(text)
        head = P.FH_THREAD.search(text) or P.FH_STACK.match(text)
        if head:
            if not self._open_faults:
                self._open_faults.append(FaultRecord(None, None, lineno, _cap(text), worker))
            groups = head.groupdict()
            tid = groups.get("tid") or "unknown"
            label = f"{tid} {groups['name']}" if groups.get("name") else tid
            state = "current" if groups.get("current") == "Current thread" else None
            self._stack = Stack(pid=None, thread=label, method="faulthandler", state=state)
            # Interleaved dumps: each record takes one "Current thread"; the earliest record
            # still without one is the one this header continues.
            record = next(
                (r for r in self._open_faults if all(s.state != "current" for s in r.stacks)),
                self._open_faults[-1],
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
        block, self._block = self._block, None
        self._dispatch(text, worker, lineno, text, self._prev)  # the line before names the test
        if self._block is None:
            self._block = block
        return True

    def _recover_signal(self, text: str) -> None:
        """Give a fatal record whose reason was spliced away the first reason seen after it."""
        pending = [r for r in self._open_faults if r.fatal is not None and r.signal is None]
        if not pending:
            return
        name = P.FATAL_NAME.search(text)
        if name:
            what = name.group(0).replace("Floating-point", "Floating point")
            pending[0].fatal, pending[0].signal = what, FATAL_SIGNALS.get(what)

    # -- pytest-timeout -------------------------------------------------------------------------
    def _timeout_start(self, test: str | None, worker: str | None, lineno: int, text: str) -> None:
        if self._timeout is not None and self._block == self._timeout_line:
            # The closing banner of the dump we are in.
            self._close_blocks()
            return
        self._open(self._timeout_line)
        # Serial, with live logs: the dump names no test, the live-log section does.
        test = test or (self._live_test if self._section is None else None)
        self._timeout = TimeoutDump(test, lineno, _cap(text), worker)
        if self._section is None and self._prev is not None:
            # Printed live by the thread method: the silence before it is the hang's length.
            now, before = timestamp(self._raw), timestamp(self._prev)
            if now is not None and before is not None:
                self._timeout.silent_s = round(max(0.0, now - before), 3)

    def _timeout_line(self, text: str, worker: str | None, lineno: int) -> bool:
        dump = self._timeout
        if dump is None:
            return False
        if P.TIMEOUT_BANNER.match(text):
            self._close_blocks()
            return True
        live = text if self._live_ci_times else self._raw  # under a CI time, the record's own
        when = timing.live_log_time(live) if self._live_test is not None else None
        if self._live_test is not None and when is not None:
            # The test's own logging goes on while the timer's thread dumps.
            self.scan.times.add_live(self._live_test, when)
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

    # -- native aborts --------------------------------------------------------------------------
    def _native_line(self, text: str, worker: str | None, lineno: int) -> bool:
        native = self._native
        if native is None:
            return False
        if native.kind == "cpp-terminate":
            what = P.CPP_WHAT.match(text)
            if what:
                native.message = (
                    f"{native.message}: {what.group('what')}"
                    if native.message
                    else what.group("what")
                )
                return False or self._end_native()
            self._native_wait += 1
            return self._native_wait < 2 and not text.strip()
        frame = P.RUST_FRAME.match(text)
        if frame and not text.strip().startswith("at "):
            if len(native.frames) < MAX_FRAMES:
                native.frames.append(Frame(frame.group("name").strip(), None, None, native=True))
            return True
        at = P.RUST_AT.match(text)
        if at and native.frames:
            native.frames[-1].file = at.group("file")
            native.frames[-1].line = int(at.group("line"))
            return True
        if text.startswith(("stack backtrace:", "note: ")):
            return True
        if not native.message and text.strip() and not native.frames:
            native.message = _cap(text.strip(), 300)
            return True
        self._native_wait += 1
        return False

    def _end_native(self) -> bool:
        self._close_blocks()
        return True

    # -- tracebacks ---------------------------------------------------------------------------
    def _tb_line(self, text: str, worker: str | None, lineno: int) -> bool:
        tb = self._tb
        if tb is None:
            return False
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
            tb.exc_type, tb.message = exc.group("type"), _cap((exc.group("msg") or "").strip(), 300)
            tb.signature = normalize(f"{tb.exc_type}: {tb.message}")
            self._close_blocks()
            return True
        return False

    # -- pytest reports -----------------------------------------------------------------------
    def _e_line(self, text: str, lineno: int) -> None:
        match = P.E_LINE.match(text)
        if match and self._section is None:
            # An excerpt that starts inside a failure section: its E line still tells, and the
            # section's own lines after it may name the test.
            exc_type, message = _exc_parts(match.group("text"))
            if exc_type is not None and self._loose is None:
                self._loose = (exc_type, _cap(message, 300), lineno, _cap(text))
                self._follow, self._def_name = SECTION_FOLLOW_LINES, None
            if P.TIMEOUT_FAILED.search(text):
                self._add(self.scan.timeouts, TimeoutDump(None, lineno, _cap(text)))
            elif P.INFRA.search(text):
                self._infra(text, lineno)
            return
        if not match or self._section is None or self._section in self._section_exc:
            return
        exc_type, message = _exc_parts(match.group("text"))
        if exc_type is None:
            return
        if len(self._section_exc) < MAX_RECORDS:
            self._section_exc[self._section] = (exc_type, _cap(message, 300), self._section_phase)

    def _short_result(self, text: str, worker: str | None, lineno: int) -> None:
        match = P.SHORT_RESULT.match(text)
        if not match:
            if P.INFRA.search(text):
                self._infra(text, lineno)
            return
        self._summary_seen = True
        test = match.group("test")
        kind = "failed" if match.group("kind") == "FAILED" else "error"
        exc_type, message = _exc_parts(match.group("msg") or "")
        section = self._section_info(_section_key(test))
        phase = section[2] if section else None
        if section and (not message or message.endswith("...") or exc_type is None):
            exc_type, message = section[0], section[1]
        self._failure(test, kind, exc_type, message, lineno, text, worker, phase)

    def _failure(
        self,
        test: str | None,
        kind: str,
        exc_type: str | None,
        message: str,
        lineno: int,
        text: str,
        worker: str | None,
        phase: str | None,
    ) -> None:
        message = message.removesuffix("...").strip() if message.endswith("...") else message
        head = f"{exc_type}: {message}" if exc_type else message
        if exc_type == "Failed" and P.TIMEOUT_FAILED.search(head):
            self._add(self.scan.timeouts, TimeoutDump(test, lineno, _cap(text or head), worker))
            limit = timing.timeout_limit(head)
            if limit is not None:
                self.scan.times.add_limit(test, limit)
        if P.INFRA.search(head):
            self.scan.infra_count += 1
        if phase is None and kind == "failed":
            phase = "call"
        failure = PythonFailure(
            test,
            kind,
            exc_type,
            _cap(message, 300),
            normalize(head),
            lineno,
            _cap(text or head),
            worker,
            phase,
        )
        self._add(self.scan.failures, failure)

    def _summary_line(self, text: str, lineno: int) -> None:
        match = P.SUMMARY_LINE.match(text)
        if not match:
            if "test session starts" in text:
                self._deaths.session_start(lineno)
            return
        counts = self.scan.summary.counts if self.scan.summary else TestCounts()
        bad = 0  # this session's own failures and errors: a clean session settles its deaths
        for item in P.SUMMARY_ITEM.finditer(match.group("body")):
            n, what = int(item.group("n")), item.group("what")
            bad += n if what == "failed" or what.startswith("error") else 0
            if what == "failed":
                counts.failed += n
            elif what == "passed":
                counts.passed += n
            elif what == "skipped":
                counts.skipped += n
            elif what.startswith("error"):
                counts.error += n
        duration = float(match.group("secs"))
        if self.scan.summary and self.scan.summary.duration_s is not None:
            duration += self.scan.summary.duration_s
        self.scan.summary = Summary(counts, duration, lineno)
        self._deaths.summary(lineno, clean=bad == 0)

    # -- kills and infrastructure ---------------------------------------------------------------
    def _kill(self, text: str, lineno: int, raw: str, prev: str | None) -> bool:
        scan = self.scan
        if "oom" in text or "Out of memory" in text:
            oom = P.OOM.search(text)
            if oom:
                pid = oom.group("pid") or oom.group("rpid")
                self._add(
                    scan.kills,
                    KillEvent(
                        "oom",
                        lineno,
                        _cap(text),
                        "SIGKILL",
                        None,
                        int(pid) if pid else None,
                        oom.group("comm"),
                    ),
                )
                self._deaths.watch(lineno)  # a child's OOM kill in a test that then passed
                return True
        if "exit code" in text or "exit status" in text or "exited with code" in text:
            code = P.EXIT_CODE.search(text)
            if code:
                value = int(code.group("code"))
                scan.exit_code = value
                if value in P.SIGNAL_BY_EXIT:
                    self._add(
                        scan.kills,
                        KillEvent("exit-code", lineno, _cap(text), P.SIGNAL_BY_EXIT[value], value),
                    )
                return True
        if P.CANCELED.search(text):
            silence = None
            now, before = timestamp(raw), timestamp(prev) if prev else None
            if now is not None and before is not None:
                silence = max(0.0, now - before)
            self._add(
                scan.kills, KillEvent("canceled", lineno, _cap(text), None, None, silence_s=silence)
            )
            return True
        return False

    def _infra(self, text: str, lineno: int) -> None:
        self.scan.infra_count += 1
        host = P.HTTP_HOST.search(text)
        self._add(
            self.scan.infra, InfraError(_cap(text), lineno, host.group("host") if host else None)
        )


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
