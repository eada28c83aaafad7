"""Deaths that a shell, a CI runner or a runtime reports, rather than pytest or faulthandler.

``Aborted (core dumped)`` from bash, fish's ``terminated by signal``, cargo's ``process didn't
exit successfully``, a Windows status code (``0xC0000005``), libc++abi's uncaught exception,
a macOS crash report or ``Terminating app due to uncaught exception``, and the objc fork-safety
abort.  Each becomes a :class:`KillEvent` (the death itself) or a :class:`NativeAbort` (what
the runtime said before it died); the correlator turns them into incidents.  The words
themselves are in :mod:`.death_lines`.

None of these lines name a test, so the test is taken from the progress pytest printed around
the death: the ``path::test`` of ``pytest -v`` with no result yet, or the file of the dots line
the death interrupted.  Only the death line, the line before it and a few lines after it are
looked at: the scanner never sees the ordinary progress lines (the prefilter skips them).

A death the tests caused on purpose is not an incident (a test that crashes a child process, or
prints one of these words): a death followed by its test's ``PASSED``, or by a complete session
summary with no failure or error, is settled as a note (:meth:`Deaths.settle`), and so is a
shell's report about a command that is not the test run (a CI script killing its
``http.server``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import Any, Protocol

from forensics.analyze.logs.death_lines import (
    BY_SIGNAL,
    CARGO,
    CRASH_EXCEPTION,
    CRASHED_THREAD,
    CXX_UNCAUGHT,
    DOTS_BEFORE,
    DOTS_RUNNING,
    FISH_COMMAND,
    MAC_FRAME,
    NS_UNCAUGHT,
    OBJC_FORK,
    OLD_VERBOSE_RUNNING,
    RESULT,
    RUST_ABORTING,
    SHELL_BY,
    SHELL_DEATH,
    SHELL_WORDS,
    SURVIVED,
    SYSTEM_LIBRARIES,
    VERBOSE_RUNNING,
    ZSH_WORDS,
    running_test,
    runs_tests,
    windows_status,
)
from forensics.analyze.logs.decorations import strip
from forensics.analyze.logs.findings import FaultRecord, KillEvent, NativeAbort, NodeDown
from forensics.model import Frame


class _Scan(Protocol):
    source: str
    kills: list[KillEvent]
    native_aborts: list[NativeAbort]
    faults: list[FaultRecord]
    node_downs: list[NodeDown]
    notes: list[str]


# Lines after a death searched for the test pytest announced (stdout and stderr arrive in
# either order in a CI log: the shell's "Aborted" often comes before pytest's "path::test").
AFTER_LINES = 3
MAX_FRAMES = 64
# Lines after a death searched for its test's result: a test's captured output between the
# death and pytest's "PASSED" is rarely longer.
RESULT_LINES = 200
MAX_NOTES = 20
MAX_SPANS = 10_000


class Deaths:
    """The death lines of one log; :meth:`line` is the scanner's hook."""

    def __init__(self, scan: _Scan, add: Callable[[list[Any], Any], None]) -> None:
        self.scan = scan
        self._add = add
        self._after = 0  # lines still searched for the running test
        self._untested: list[KillEvent | NativeAbort] = []
        self._frames: NativeAbort | None = None  # a crash report whose frames are being read
        self._report: NativeAbort | None = None  # the macOS crash report being read
        # The death whose test's result is awaited: its first line, the test, lines left.
        self._watch_from = 0
        self._watch_test: str | None = None
        self._watch_left = 0
        # Where this session began (its header or the previous summary): a clean summary
        # settles the deaths after it.
        self._session_from = 0
        # Line spans (first, last) whose deaths the tests survived, in log order.
        self._spans: list[tuple[int, int]] = []
        self._why: list[str] = []
        self._unnoted = 0

    @property
    def wants_lines(self) -> bool:
        return self.wants_dispatch or self._watch_left > 0

    @property
    def wants_dispatch(self) -> bool:
        """Whether the lines it reads are parsed as usual too (not only watched for a result)."""
        return self._after > 0 or self._frames is not None

    # -- deaths the tests survived -------------------------------------------------------------
    def watch(self, lineno: int, test: str | None = None) -> None:
        """A death at *lineno*: watch for its test's result (a runtime's, a fault dump's too)."""
        if self._watch_left <= 0:
            self._watch_from, self._watch_test = lineno, test
        self._watch_test = self._watch_test or test
        self._watch_left = RESULT_LINES

    def _result(self, text: str, lineno: int) -> None:
        self._watch_left -= 1
        result = RESULT.match(text)
        if result is None:
            running = _verbose_test(text)
            if running is not None and self._watch_test not in (None, running):
                self._watch_left = 0  # the next test began: this one's result was not seen
            elif running is not None:
                self._watch_test = running
            return
        test = result.group("test")
        if (
            test is not None
            and self._watch_test is not None
            and not _same_test(test, self._watch_test)
        ):
            return  # another test's result (xdist interleaves them)
        self._watch_left = 0
        if result.group("word") in SURVIVED:
            name = test or self._watch_test or "the test"
            self._settle(self._watch_from, lineno, f"{name} {result.group('word')} after it")

    def session_start(self, lineno: int) -> None:
        """A session header: deaths before it belong to an earlier session."""
        self._session_from = lineno
        self._watch_left = 0  # a new pytest: the one that printed the death is gone

    def summary(self, lineno: int, clean: bool) -> None:
        """A session's summary line; *clean* when it counts no failure and no error."""
        first = self._session_from
        # A worker xdist lost, then a rerun that passed: the worker's death still stands.
        if clean and not any(first <= d.line <= lineno for d in self.scan.node_downs[-50:]):
            self._settle(first, lineno, "the session then passed")
        self._session_from = lineno
        self._watch_left = 0

    def _settle(self, first: int, last: int, why: str) -> None:
        # Kept sorted and apart: a session's span swallows the test spans inside it.
        while self._spans and first <= self._spans[-1][1]:
            start, end = self._spans.pop()
            first, last = min(first, start), max(last, end)
            self._why.pop()
        if len(self._spans) < MAX_SPANS:
            self._spans.append((first, last))
            self._why.append(why)

    def _survived(self, line: int) -> str | None:
        at = bisect_right(self._spans, (line, float("inf"))) - 1
        if at >= 0 and self._spans[at][0] <= line <= self._spans[at][1]:
            return self._why[at]
        return None

    def settle(self) -> None:
        """At the end: deaths the tests survived leave the findings for the notes."""
        if not self._spans:
            return
        scan = self.scan
        kills = [k for k in scan.kills if k.kind == "canceled" or not self._note(k.line, k.excerpt)]
        natives = [n for n in scan.native_aborts if not self._note(n.line, n.excerpt)]
        faults = [f for f in scan.faults if f.fatal is None or not self._note(f.line, f.excerpt)]
        scan.kills[:], scan.native_aborts[:], scan.faults[:] = kills, natives, faults
        if self._unnoted:
            scan.notes.append(f"{scan.source}: {self._unnoted} more deaths not counted (as above)")

    def _note(self, line: int, excerpt: str) -> bool:
        why = self._survived(line)
        if why is None:
            return False
        self.note(line, f"{excerpt[:120]!r} not counted as a death: {why}")
        return True

    def note(self, line: int, what: str) -> None:
        if len(self.scan.notes) < MAX_NOTES:
            self.scan.notes.append(f"{self.scan.source}:{line}: {what}")
        else:
            self._unnoted += 1

    def follow(self, text: str, lineno: int = 0) -> bool:
        """A line after a death: a frame of its report (consumed), the running test, its result."""
        if self._watch_left > 0:
            self._result(text, lineno)
        if self._frames is not None:
            frame = MAC_FRAME.match(text)
            if frame and len(self._frames.frames) < MAX_FRAMES:
                lib, sym = frame.group("lib"), frame.group("sym")
                self._frames.frames.append(Frame(sym, None, None, native=True, library=lib))
                if self._frames.library is None and not SYSTEM_LIBRARIES.match(lib):
                    self._frames.library = lib
                return True
            if text.strip() in ("(", ")", "") and not self._frames.frames:
                return True
            self._frames = None
        if self._after > 0:
            self._after -= 1
            test = _verbose_test(text) or _cut_dots(text)
            if test is not None:
                self._name(test)
                self._after = 0
        return False

    def line(self, text: str, worker: str | None, lineno: int, prev: str | None) -> bool:
        """Parse a death line; True when it was one."""
        return (
            self._runtime(text, worker, lineno, prev)
            or self._mac_report(text, worker, lineno)
            or self._shell(text, worker, lineno, prev)
        )

    # -- the records ---------------------------------------------------------------------------
    def _kill(
        self,
        text: str,
        lineno: int,
        signal: str,
        start: int,
        prev: str | None,
        exit_code: int | None = None,
        what: str | None = None,
    ) -> KillEvent:
        kill = KillEvent("shell-signal", lineno, text[:400], signal, exit_code, what=what)
        kill.test = self.running(text[:start], prev)
        self._add(self.scan.kills, kill)
        self._expect(kill)
        self.watch(lineno, kill.test)
        return kill

    def _native(
        self,
        kind: str,
        message: str,
        text: str,
        lineno: int,
        worker: str | None,
        library: str | None,
        start: int,
        prev: str | None,
        signal: str = "SIGABRT",
    ) -> NativeAbort:
        native = NativeAbort(
            kind, message[:300], lineno, text[:400], library=library, worker=worker, signal=signal
        )
        native.test = self.running(text[:start], prev)
        self._add(self.scan.native_aborts, native)
        self._expect(native)
        self.watch(lineno, native.test)
        return native

    def _expect(self, record: KillEvent | NativeAbort) -> None:
        if record.test is None:
            self._untested = [*self._untested[-7:], record]  # bounded, whatever the log
            self._after = AFTER_LINES

    def _name(self, test: str) -> None:
        for record in self._untested:
            record.test = record.test or test
        self._untested.clear()

    def in_section(self, section: str | None) -> None:
        """The failure section the last death was printed in names its test, if nothing else."""
        if section is None:
            return
        for record in self.scan.kills[-1:] + self.scan.native_aborts[-1:]:
            if record.test is None and record in self._untested:
                record.test = section
                self._untested.remove(record)
        if not self._untested:
            self._after = 0

    def running(self, before: str, prev: str | None) -> str | None:
        """The test running at a death: from the text before it on its line, or the line before."""
        test = running_test(before.strip()) if before.strip() else None
        if test is None and prev is not None:
            test = _verbose_test(_strip(prev)) or running_test(_strip(prev))
        return test

    # -- parsers -------------------------------------------------------------------------------
    def _runtime(self, text: str, worker: str | None, lineno: int, prev: str | None) -> bool:
        if "uncaught exception of type" in text:
            cxx = CXX_UNCAUGHT.search(text)
            if cxx:
                what = cxx.group("type")
                msg = (cxx.group("msg") or "").strip()
                message = f"{what}: {msg}" if msg else what
                self._native(
                    "cxx-uncaught", message, text, lineno, worker, "libc++abi", cxx.start(), prev
                )
                return True
        if "Terminating app due to" in text:
            ns = NS_UNCAUGHT.search(text)
            if ns:
                why = ns.group("why")
                message = f"{ns.group('type')}: {why}" if why else ns.group("type")
                if self._report is not None and lineno - self._report.line < 40:
                    self._report.message = message  # the report's Application Specific Info
                    return True
                native = self._native(
                    "ns-exception", message, text, lineno, worker, None, len(text), None
                )
                self._frames = native  # "*** First throw call stack:" follows
                return True
        if "when fork() was called" in text:
            fork = OBJC_FORK.search(text)
            if fork:
                cls = fork.group("cls")
                # objc prints the warning and then the abort message for the same pid.
                if any(
                    n.kind == "objc-fork"
                    and n.message.startswith(f"+[{cls} initialize]")
                    and lineno - n.line < 5
                    for n in self.scan.native_aborts[-4:]
                ):
                    return True
                message = (
                    f"+[{cls} initialize] was in progress in another thread when fork() was"
                    f" called (pid {fork.group('pid')}); objc aborts the child"
                )
                self._native("objc-fork", message, text, lineno, worker, "libobjc", 0, prev)
                return True
        if "didn't exit successfully" in text:
            cargo = CARGO.search(text)
            if cargo:
                if cargo.group("sig"):
                    self._kill(text, lineno, cargo.group("sig"), 0, None, what="cargo test binary")
                    return True
                status = windows_status(cargo.group("code") or "")
                if status is not None:
                    self._kill(text, lineno, status[1], 0, None, status[0], status[2])
                    return True
        if RUST_ABORTING.search(text):
            self._native("rust-abort", text.strip(), text, lineno, worker, "rust runtime", 0, prev)
            return True
        return False

    def _mac_report(self, text: str, worker: str | None, lineno: int) -> bool:
        if text.startswith("Exception Type:"):
            head = CRASH_EXCEPTION.match(text)
            if head:
                self._report = self._native(
                    "macos-crash-report",
                    head.group("type"),
                    text,
                    lineno,
                    worker,
                    None,
                    len(text),
                    None,
                    signal=head.group("sig"),
                )
                return True
        if CRASHED_THREAD.match(text):
            target = self._report
            if text.startswith("***"):
                recent = self.scan.native_aborts[-1:] if self.scan.native_aborts else []
                target = recent[0] if recent and lineno - recent[0].line < 5 else target
            if target is not None:
                self._frames = target
                return True
        return False

    def _shell(self, text: str, worker: str | None, lineno: int, prev: str | None) -> bool:
        if "signal" in text or "] " in text:
            by = BY_SIGNAL.search(text)
            if by:
                fish = FISH_COMMAND.search(text[max(0, by.start() - 520) : by.start()])
                cmd = fish.group("cmd") if fish else text[by.end() :] if by.group("zsh") else ""
                if cmd.strip() and not runs_tests(cmd):
                    self._other_command(lineno, by.group(0).strip(), cmd)
                    return True
                sig = by.group("sig") or ZSH_WORDS[by.group("zsh")]
                self._kill(text, lineno, sig, by.start(), prev)
                return True
        shell = SHELL_DEATH.search(text) if any(w in text for w in SHELL_WORDS) else None
        if shell:
            before = text[: shell.start()]
            by = SHELL_BY.search(before[-600:]) if before else None
            if by is not None:
                # What the program printed before the shell's or make's words: the progress.
                start = len(before) - len(before[-600:]) + by.start()
            elif (
                before
                and not DOTS_BEFORE.match(before.strip())
                and running_test(before.strip()) is None
            ):
                # Not the progress the death cut short (dots, or -v's "path::test " with no
                # result yet): the word inside some other sentence ("State.Terminated").
                return False
            else:
                start = len(before)  # the progress line the death cut short, or nothing
            cmd = shell.group("cmd") or ""
            # The progress pytest printed right before the shell's words: pytest is what died.
            cut_short = running_test(text[:start].strip()) is not None
            if cmd.strip() and not cut_short and not runs_tests(cmd):
                self._other_command(lineno, shell.group("what"), cmd)
                return True
            self._kill(text, lineno, SHELL_WORDS[shell.group("what")], start, prev)
            return True
        if "::" in text or RESULT.match(text):
            return False  # a test's id or result line, whatever number it holds
        status = windows_status(text, context=True)
        if status is not None:
            self._kill(text, lineno, status[1], 0, prev, status[0], status[2])
            return True
        return False

    def _other_command(self, lineno: int, what: str, cmd: str) -> None:
        self.note(
            lineno,
            f"{what!r} reported for {cmd.strip()[:80]!r}, not a test run: not counted as a death",
        )


def _same_test(one: str, other: str) -> bool:
    """The same test, or *other* is the file of *one* (a dots line names the file only)."""
    return one == other or one.split("::", 1)[0] == other


def _verbose_test(text: str) -> str | None:
    match = VERBOSE_RUNNING.match(text) or OLD_VERBOSE_RUNNING.match(text)
    if match is None:
        return None
    if "test" in match.groupdict():
        return match.group("test")
    return f"{match.group('file')}::{match.group('name')}"


def _cut_dots(text: str) -> str | None:
    """The file of a dots line with no percentage: the line the death cut short, flushed late.

    pytest's stdout may reach the log after the shell's report on stderr; a finished dots line
    ends with its "[ 42%]", so one without it is the file whose test was running.
    """
    match = DOTS_RUNNING.match(text.rstrip())
    return match.group("file") if match and text[match.end("file") :].strip() else None


def _strip(raw: str) -> str:
    return strip(raw)[0]
