"""A runtime's last words before an abort: Rust panics, Rust's ``fatal runtime error``, C++'s
``terminate called after throwing an instance of ...``.

A panic opens a block that reads its message and backtrace; ``terminate called`` one that
reads the exception's ``what()``.  The test running is taken from the text before the words
on their line, or the line before (:meth:`Deaths.running`), and the death is watched for that
test's result: a panic the test caught is no death of the run.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.deaths import Deaths
from forensics.analyze.logs.findings import NativeAbort
from forensics.analyze.logs.scan.blocks import Blocks, Line
from forensics.analyze.logs.scan.logscan import MAX_FRAMES, LogScan, cap
from forensics.model import Frame


class NativeAborts:
    """The panic and terminate blocks, and the one-line ``fatal runtime error``."""

    def __init__(self, scan: LogScan, blocks: Blocks, deaths: Deaths) -> None:
        self.scan = scan
        self._blocks = blocks
        self._deaths = deaths
        self._native: NativeAbort | None = None
        self._wait = 0  # lines read past the record's last part
        blocks.on_close(self._flush)

    def _flush(self) -> None:
        if self._native is not None:
            self.scan.add(self.scan.native_aborts, self._native)
            self._native = None

    def panic(self, line: Line) -> bool:
        """``thread 'main' panicked at src/lib.rs:10:5``."""
        text = line.text
        panic = P.RUST_PANIC.search(text)
        if not panic:
            return False
        loc = panic.group("loc")
        crate = P.CRATE.search(loc)
        self._blocks.open(self._read)  # first: opening flushes the previous block
        self._native = NativeAbort(
            "rust-panic",
            panic.group("oldmsg") or "",
            line.lineno,
            cap(text),
            library=crate.group("crate") if crate else f"rust ({loc})",
            worker=line.worker,
            location=loc,
            test=self._deaths.running(text[: panic.start()], line.prev),
        )
        self._wait = 0
        self._deaths.watch(line.lineno, self._native.test)  # a caught panic, the test passed
        return True

    def rust_fatal(self, line: Line) -> bool:
        """``fatal runtime error: stack overflow``."""
        text = line.text
        fatal = P.FATAL_RUNTIME.search(text)
        if not fatal:
            return False
        self.scan.add(
            self.scan.native_aborts,
            NativeAbort(
                "rust-fatal",
                fatal.group("what"),
                line.lineno,
                cap(text),
                library="rust runtime",
                worker=line.worker,
            ),
        )
        self._deaths.watch(line.lineno)
        return True

    def terminate(self, line: Line) -> bool:
        """``terminate called after throwing an instance of 'std::runtime_error'``."""
        text = line.text
        term = P.CPP_TERMINATE.search(text)
        if not term:
            return False
        what = term.group("type") or (term.group("other") or "").strip()
        self._blocks.open(self._read)
        self._native = NativeAbort(
            "cpp-terminate",
            what,
            line.lineno,
            cap(text),
            library="libstdc++ (std::terminate)",
            worker=line.worker,
            signal="SIGABRT",
            test=self._deaths.running(text[: term.start()], line.prev),
        )
        self._wait = 0
        self._deaths.watch(line.lineno, self._native.test)
        return True

    def _read(self, line: Line) -> bool:
        native = self._native
        if native is None:
            return False
        text = line.text
        if native.kind == "cpp-terminate":
            what = P.CPP_WHAT.match(text)
            if what:
                native.message = (
                    f"{native.message}: {what.group('what')}"
                    if native.message
                    else what.group("what")
                )
                self._blocks.close()  # the record is whole
                return True
            self._wait += 1
            return self._wait < 2 and not text.strip()
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
            native.message = cap(text.strip(), 300)
            return True
        self._wait += 1
        return False
