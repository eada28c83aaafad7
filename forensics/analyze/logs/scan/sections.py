"""pytest's report of failed tests: failure sections, the short summary, the summary line.

A failure section (``____ TestA.test_b ____``) is read for its exception (the ``E`` line, or
the one a ``>`` frame raises when the excerpt lost the ``E`` lines) and for its test's file
(its location lines), so that a short-summary line, or the section alone when the summary was
cut, becomes a :class:`PythonFailure` with its message and node id.
"""

from __future__ import annotations

from collections.abc import Callable

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs import timing
from forensics.analyze.logs.deaths import Deaths
from forensics.analyze.logs.findings import PythonFailure, Summary, TimeoutDump
from forensics.analyze.logs.fragments import caught_panic, loose_failure
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.logscan import MAX_RECORDS, LogScan, cap, exc_parts
from forensics.analyze.logs.signatures import normalize
from forensics.model import TestCounts

# Lines after a failure section's title (or a stray "E" line) read for the test's file, its
# "def test_..." and a frame's "raise"; the next section or the summary ends the window first.
SECTION_FOLLOW_LINES = 300

# (exception type, message, phase) of a section
SectionExc = tuple[str | None, str, str | None]


def section_key(test: str) -> str:
    """A node id's failure-section title: "x.py::TestA::test_b[1]" -> "TestA.test_b[1]"."""
    return test.split("::", 1)[1].replace("::", ".") if "::" in test else test


class Sections:
    """Failure sections and the summaries; :attr:`follow` counts the section lines still read."""

    def __init__(self, scan: LogScan, deaths: Deaths, infra: Callable[[str, int], None]) -> None:
        self.scan = scan
        self._deaths = deaths
        self._infra = infra
        # title of the open section, and its phase ("setup", "teardown", "collect")
        self.section: str | None = None
        self._phase: str | None = None
        self._exc: dict[str, SectionExc] = {}  # title -> its E line; bounded
        # Read in the window after a section title: the test's file (its location line), the
        # exception a ">" frame raises (for a section whose "E" lines the excerpt lost).
        self.follow = 0
        self._file: dict[str, str] = {}
        self._raise: dict[str, SectionExc] = {}
        self._def_name: str | None = None
        # An "E" line outside any section (an excerpt cut into one): (type, message, line, text).
        self._loose: tuple[str, str, int, str] | None = None
        self.summary_seen = False

    # -- the lines of a section -----------------------------------------------------------------
    def title(self, line: Line) -> bool:
        """``____ TestA.test_b ____``: a section opens."""
        head = P.SECTION_HEADER.match(line.text)
        if not head:
            return False
        self.section = head.group("name")
        self._phase = head.group("phase") or (
            "collect" if head.group("err") and "collecting" in line.text else None
        )
        self.follow, self._def_name = SECTION_FOLLOW_LINES, None
        return True

    def follow_line(self, text: str) -> None:
        """A line in a failure section: its test's file and def, a frame's raise."""
        self.follow -= 1
        if text.startswith(("___", "===")):
            self.follow = 0  # the next section or the summary: this one ended
            return
        if "def test" in text:
            match = P.TEST_DEF.match(text)
            if match:
                self._def_name = match.group("name")
            return
        if text.startswith(">"):
            raised = P.RAISE_LINE.match(text)
            section = self.section
            if raised and section is not None and len(self._raise) < MAX_RECORDS:
                args = raised.group("args").strip()
                if len(args) >= 2 and args[0] == args[-1] and args[0] in "'\"":
                    args = args[1:-1]  # one string literal: the message itself
                self._raise[section] = (raised.group("type"), cap(args, 300), self._phase)
            return
        if ".py:" not in text:
            return
        loc = P.LOCATION.match(text)
        if loc is None or not P.TEST_FILE.search(loc.group("file")):
            return
        file = loc.group("file")
        if self.section is not None:
            if self.section not in self._file and len(self._file) < MAX_RECORDS:
                self._file[self.section] = file
        elif self._loose is not None and self._def_name is not None:
            # The stray E line and this entry are one section (no title came between): the
            # test that raised it is this file's function.
            exc_type, message, lineno, excerpt = self._loose
            self._loose = None
            test = f"{file}::{self._def_name}"
            self._failure(test, "failed", exc_type, message, lineno, excerpt, None, None)

    def e_line(self, line: Line) -> bool:
        """An ``E   ExcType: message`` line: its section's exception."""
        text, lineno = line.text, line.lineno
        match = P.E_LINE.match(text)
        if match and self.section is None:
            # An excerpt that starts inside a failure section: its E line still tells, and the
            # section's own lines after it may name the test.
            exc_type, message = exc_parts(match.group("text"))
            if exc_type is not None and self._loose is None:
                self._loose = (exc_type, cap(message, 300), lineno, cap(text))
                self.follow, self._def_name = SECTION_FOLLOW_LINES, None
            if P.TIMEOUT_FAILED.search(text):
                self.scan.add(self.scan.timeouts, TimeoutDump(None, lineno, cap(text)))
            elif P.INFRA.search(text):
                self._infra(text, lineno)
            return True
        if not match or self.section is None or self.section in self._exc:
            return True
        exc_type, message = exc_parts(match.group("text"))
        if exc_type is None:
            return True
        if len(self._exc) < MAX_RECORDS:
            self._exc[self.section] = (exc_type, cap(message, 300), self._phase)
        return True

    def _info(self, title: str) -> SectionExc | None:
        """A section's exception: its E line, else the exception its last ">" frame raises."""
        return self._exc.get(title) or self._raise.get(title)

    def _test(self, title: str) -> str:
        """A section title as a node id, when the section's location lines name its file."""
        file = self._file.get(title)
        if file is None or "::" in title:
            return title
        name, bracket, params = title.partition("[")
        return f"{file}::{name.replace('.', '::')}{bracket}{params}"

    def death(self, line: Line) -> bool:
        """A death line (:mod:`.deaths`); printed in a failure's captured output, that test
        ran the process that died."""
        if not self._deaths.line(line.text, line.worker, line.lineno, line.prev):
            return False
        section = self.section
        self._deaths.in_section(
            None if self.summary_seen or section is None else self._test(section)
        )
        return True

    # -- the summaries ---------------------------------------------------------------------------
    def short_result(self, line: Line) -> bool:
        """``FAILED path::test - ExcType: message``, completed from the test's section."""
        text, lineno = line.text, line.lineno
        match = P.SHORT_RESULT.match(text)
        if not match:
            if P.INFRA.search(text):
                self._infra(text, lineno)
            return True
        self.summary_seen = True
        test = match.group("test")
        kind = "failed" if match.group("kind") == "FAILED" else "error"
        exc_type, message = exc_parts(match.group("msg") or "")
        section = self._info(section_key(test))
        phase = section[2] if section else None
        if section and (not message or message.endswith("...") or exc_type is None):
            exc_type, message = section[0], section[1]
        self._failure(test, kind, exc_type, message, lineno, text, line.worker, phase)
        return True

    def summary_line(self, line: Line) -> bool:
        """``=== 2 failed, 5 passed in 1.2s ===`` (summed over sessions), or a session header."""
        text, lineno = line.text, line.lineno
        match = P.SUMMARY_LINE.match(text)
        if not match:
            if "test session starts" in text:
                self._deaths.session_start(lineno)
            return True
        scan = self.scan
        counts = scan.summary.counts if scan.summary else TestCounts()
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
        if scan.summary and scan.summary.duration_s is not None:
            duration += scan.summary.duration_s
        scan.summary = Summary(counts, duration, lineno)
        self._deaths.summary(lineno, clean=bad == 0)
        return True

    def finish(self) -> None:
        """What the end of the log decides: with no short summary (output cut, -rN) the
        failure sections still name the tests; an excerpt that is only a failure's end or a
        caught panic is that failure (:mod:`..fragments`)."""
        if not self.summary_seen:
            titles = list(dict.fromkeys([*self._exc, *self._raise]))
            for title in titles[:MAX_RECORDS]:
                info = self._info(title)
                if info is None:
                    continue
                exc_type, message, phase = info
                kind = "error" if phase else "failed"
                self._failure(self._test(title), kind, exc_type, message, 0, "", None, phase)
        part = loose_failure(self.scan, self._loose) or caught_panic(self.scan)
        if part is not None:
            args = (part.exc_type, part.message, part.line, part.excerpt, part.worker, None)
            self._failure(part.test, "failed", *args)

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
        scan = self.scan
        message = message.removesuffix("...").strip() if message.endswith("...") else message
        head = f"{exc_type}: {message}" if exc_type else message
        if exc_type == "Failed" and P.TIMEOUT_FAILED.search(head):
            scan.add(scan.timeouts, TimeoutDump(test, lineno, cap(text or head), worker))
            limit = timing.timeout_limit(head)
            if limit is not None:
                scan.times.add_limit(test, limit)
        if P.INFRA.search(head):
            scan.infra_count += 1
        if phase is None and kind == "failed":
            phase = "call"
        failure = PythonFailure(
            test,
            kind,
            exc_type,
            cap(message, 300),
            normalize(head),
            lineno,
            cap(text or head),
            worker,
            phase,
        )
        scan.add(scan.failures, failure)
