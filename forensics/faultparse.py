"""Parse faulthandler output: fatal-error blocks and on-demand thread dumps.

The text looks like::

    Fatal Python error: Segmentation fault

    Current thread 0x00007f1c2d6f3740 (most recent call first):
      File "/x/test_a.py", line 7 in test_segv
      File "/x/python.py", line 195 in pytest_pyfunc_call
      ...

    Thread 0x00007f1c2b2ee640 (most recent call first):
      File "/usr/lib/python3.11/threading.py", line 320 in wait

    Extension modules: _cffi_backend, ... (total: 3)

Frames are printed most recent first; we keep them outermost first (the order py-spy's text
and most readers expect reversed), and record ``innermost`` explicitly via list order: index 0
is the innermost frame, as faulthandler prints it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from forensics.model import Frame, Stack

# Names faulthandler prints after "Fatal Python error: " for the fatal signals it handles.
FATAL_SIGNALS = {
    "Segmentation fault": "SIGSEGV",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Floating point exception": "SIGFPE",
    "Floating-point exception": "SIGFPE",
    "Illegal instruction": "SIGILL",
}

# faulthandler on Windows: "Windows fatal exception: access violation".
WINDOWS_FATAL = {"access violation": "SIGSEGV", "stack overflow": "SIGSEGV"}

# The report's lines: the one set of rules for them, used by parse_fault_text on a fault file
# and by the log scanner (forensics/analyze/logs/patterns.py) on a CI log.  None is anchored at
# the end: in a CI log another worker's output is spliced into a dump ("... in test_a[gw1]
# PASSED"), and the scanner takes what matched; parse_fault_text asks for whole lines.
FATAL_RE = re.compile(r"(?:Fatal Python error|Windows fatal exception): (?P<what>.*)$")
THREAD_RE = re.compile(
    r"(?P<current>Current thread|Thread) (?P<tid>0x[0-9a-fA-F]+)(?: \[(?P<name>[^\]]*)\])?"
    r" \(most recent call first\):"
)
# faulthandler prints "Stack (most recent call first):" when it cannot tell the thread.
STACK_RE = re.compile(r"^Stack \(most recent call first\):")
FRAME_RE = re.compile(r'^\s+File "(?P<file>.*)", line (?P<line>\d+|\?\?\?) in (?P<name>\S+)')
# dump_traceback_later's header: "Timeout (0:00:04.500000)!"
# faulthandler_timeout prints its banner where the cursor is, as pytest-timeout does: in a log,
# after -q's dots on a progress line ("tests/test_ws.py .....Timeout (0:00:05)!"), whose file is
# the test's.
TIMER_RE = re.compile(
    r"^(?:(?P<file>[\w./\\-]+\.py) [.FEsxXp]*)?Timeout \((?P<after>\d+:\d\d:\d\d(?:\.\d+)?)\)!"
)
EXTENSION_MODULES = "Extension modules:"
GARBAGE_RE = re.compile(r"^\s+<(?:no Python frame|truncated)>\s*$")


@dataclass
class FaultBlock:
    """One faulthandler report: a fatal error, or a dump taken on request or by a timer."""

    fatal: str | None = None  # "Segmentation fault", "Aborted", ... or None for a plain dump
    signal: str | None = None
    threads: list[Stack] = field(default_factory=list)
    current_thread: str | None = None
    first_line: int = 0
    text: str = ""
    # For a dump taken by faulthandler's timer: "Timeout (0:00:04.500000)!".
    header: str | None = None

    @property
    def current(self) -> Stack | None:
        for stack in self.threads:
            if stack.thread == self.current_thread:
                return stack
        return self.threads[0] if self.threads else None


def _frame(match: re.Match[str], text: str) -> Frame:
    line = match.group("line")
    return Frame(
        # A fault file is not spliced: the rest of the line is the function's name.
        name=text[match.start("name") :].strip(),
        file=match.group("file"),
        line=int(line) if line.isdigit() else None,
        native=False,
    )


def _whole(match: re.Match[str] | None, text: str) -> re.Match[str] | None:
    """The match when nothing but blanks follows it on the line."""
    return match if match is not None and not text[match.end() :].strip() else None


def _signal(what: str) -> str | None:
    return FATAL_SIGNALS.get(what) or WINDOWS_FATAL.get(what.lower())


def parse_fault_text(text: str, pid: int | None = None) -> list[FaultBlock]:
    """Split *text* into faulthandler blocks.

    A fatal block starts at "Fatal Python error:" and owns the thread stacks after it; thread
    stacks that follow no fatal line (dump_traceback, dump_traceback_later, a registered signal)
    form dump blocks, one per run of consecutive thread sections.
    """
    blocks: list[FaultBlock] = []
    block: FaultBlock | None = None
    stack: Stack | None = None
    lines = text.splitlines()
    block_start = 0
    in_threads = False  # a dump block stays open across the blank lines between its threads

    def close() -> None:
        nonlocal block, stack
        if block is not None:
            block.text = "\n".join(lines[block_start:index]).strip("\n")
            blocks.append(block)
        block, stack = None, None

    index = 0
    for index, line in enumerate(lines):
        fatal = FATAL_RE.search(line)
        if fatal:
            close()
            what = fatal.group("what").strip()
            block = FaultBlock(fatal=what, signal=_signal(what), first_line=index + 1)
            block_start = index
            in_threads = False
            continue
        timer = _whole(TIMER_RE.match(line), line)
        if timer:
            close()
            block = FaultBlock(first_line=index + 1, header=line.strip())
            block_start = index
            in_threads = False
            continue
        head = _whole(THREAD_RE.match(line), line) or _whole(STACK_RE.match(line), line)
        if head:
            if block is None or (block.fatal is None and block.header is None and not in_threads):
                close()
                block = FaultBlock(first_line=index + 1)
                block_start = index
            tid = head.groupdict().get("tid") or "unknown"
            name = head.groupdict().get("name")
            label = f"{tid} {name}" if name else tid
            stack = Stack(pid=pid, thread=label, method="faulthandler")
            block.threads.append(stack)
            if head.groupdict().get("current") == "Current thread":
                block.current_thread = label
            in_threads = True
            continue
        frame = FRAME_RE.match(line)
        if frame and stack is not None:
            stack.frames.append(_frame(frame, line))
            continue
        if GARBAGE_RE.match(line) or not line.strip():
            stack = None if not line.strip() else stack
            continue
        if line.startswith(EXTENSION_MODULES) and block is not None:
            continue
        # Anything else ends the thread sections of a dump block.
        stack = None
        if block is not None and block.fatal is None:
            index_saved = index
            close()
            index = index_saved
            in_threads = False
    index = len(lines)
    close()
    return blocks


def fatal_block(blocks: list[FaultBlock]) -> FaultBlock | None:
    """The first fatal-error block, which describes how the process died."""
    for block in blocks:
        if block.fatal is not None:
            return block
    return None


_MARK = b"Fatal Python error: "
_CHUNK = 1 << 20
# A faulthandler report of every thread is a few KiB; cap what one block may claim.
_BLOCK_BYTES = 64 * 1024


def fatal_blocks_in(fh: BinaryIO, limit: int) -> Iterator[tuple[int, int, FaultBlock]]:
    """(byte offset, line number, block) of each fatal block in a console log, read in chunks
    (the log may be gigabytes; a block is read on its own, at most 64 KiB)."""
    base, lines_before, tail, count = 0, 0, b"", 0
    while count < limit:
        chunk = fh.read(_CHUNK)
        if not chunk:
            return
        data = tail + chunk
        start = 0
        while (at := data.find(_MARK, start)) != -1 and count < limit:
            offset = base + at
            fh_pos = fh.tell()
            fh.seek(offset)
            text = fh.read(_BLOCK_BYTES).decode("utf-8", "replace")
            fh.seek(fh_pos)
            nxt = text.find(_MARK.decode(), len(_MARK))
            parsed = parse_fault_text(text[: nxt if nxt > 0 else None])
            if parsed and parsed[0].fatal:
                count += 1
                yield offset, lines_before + data.count(b"\n", 0, at) + 1, parsed[0]
            start = at + len(_MARK)
        # Keep a partial marker at the chunk's end for the next round.
        keep = len(_MARK) - 1
        lines_before += data.count(b"\n", 0, len(data) - keep)
        base += len(data) - keep
        tail = data[len(data) - keep :]
