"""A bundle's ``output.log`` read by the raw-log scanner, as evidence for the wrap incidents.

What a dying process printed only on the console (a Rust panic, a C++ terminate, a child's
faulthandler dump) is found by the same scanner and rules as in a CI log
(:mod:`forensics.analyze.logs`); each death the scanner sees is matched to the incident the
supervisor recorded for it (by test, by worker, then by the time it was printed) and enriches
it.  The console never adds an incident of its own: every death of the run is already one.
The same read keeps the console's last bytes, where the run section finds why a run ended
before its tests (:mod:`forensics.analyze.run_facts`).
"""

from __future__ import annotations

import bisect
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from forensics.analyze.logs.native_aborts import NATIVE_LABEL
from forensics.analyze.logs.reader import scan_stream
from forensics.analyze.testids import same_node
from forensics.bundle import OUTPUT, OUTPUT_INDEX, open_bundle_file, read_jsonl
from forensics.errors import InputError
from forensics.model import Evidence, Incident, Stack

# What the console can tell about a death; its Python failures are the agent's to report.
_DEATHS = {"native-crash", "oom-kill", "external-kill", "unexpected-exit", "hang"}
_CHUNK = 1 << 20
# What a person scrolls back through at the end of a failed run's output.
TAIL_BYTES = 64 * 1024
# How far a line's time may be from the death: the size notes are sparse (0.2 s) and a child's
# stderr reaches the console through its parent's pipes.
_BEFORE_S, _AFTER_S = 5.0, 2.0


@dataclass
class ConsoleEvent:
    """One thing a dying process printed: a fatal faulthandler block or a native abort."""

    line: int
    signal: str | None
    what: str
    excerpt: str
    worker: str | None = None
    test: str | None = None
    stacks: list[Stack] = field(default_factory=list)
    library: str | None = None
    abort: bool = False  # a panic or terminate: its words belong in the summary
    time: float | None = None


@dataclass
class ConsoleFindings:
    matched: int = 0
    unmatched: list[ConsoleEvent] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tail: bytes = b""  # the console's last TAIL_BYTES, from the scanner's read


class _KeepTail(io.RawIOBase):
    """Reads through to *stream* and keeps the last *size* bytes that went by."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        super().__init__()
        self._stream, self._size = stream, size
        self.tail = bytearray()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.tail += data[-self._size :]
        del self.tail[: max(0, len(self.tail) - self._size)]
        return len(data)


def console_events(output: Path) -> tuple[list[ConsoleEvent], list[str], bytes]:
    """What the raw-log scanner finds dying processes printed in a bundle's console log, the
    notes of the scan, and the log's last TAIL_BYTES (the file is read once).

    The scanner's findings, not its incidents: pairing a dump with a death by log order is
    what a log alone allows; wrap knows each death, so each finding is matched on its own.
    """
    try:
        with open_bundle_file(output) as stream:
            kept = _KeepTail(stream, TAIL_BYTES)
            scan = scan_stream(io.BufferedReader(kept), OUTPUT)
    except (OSError, InputError) as exc:
        return [], [f"{OUTPUT}: not scanned: {exc}"], b""
    events = [
        ConsoleEvent(
            f.line,
            f.signal,
            f"Fatal Python error: {f.fatal}",
            f.excerpt,
            f.worker,
            f.test,
            f.stacks,
        )
        for f in scan.faults
        if f.fatal is not None and f.timeout is None
    ]
    for n in scan.native_aborts:
        label = NATIVE_LABEL.get(n.kind, n.kind)
        frames = [Stack(pid=None, thread=f"{n.kind} backtrace", frames=n.frames, method="log")]
        events.append(
            ConsoleEvent(
                n.line,
                # A macOS crash report names the signal it died of (SIGSEGV, SIGBUS...); the
                # runtimes that abort on their own raise SIGABRT.
                n.signal or "SIGABRT",
                f"{label}: {n.message}" if n.message else label,
                n.excerpt,
                n.worker,
                stacks=frames if n.frames else [],
                library=n.library,
                abort=True,
            )
        )
    return sorted(events, key=lambda e: e.line), scan.notes, bytes(kept.tail)


def _size_note(record: dict[str, object]) -> tuple[int, float] | None:
    """``(offset, time)`` of one record of the size notes; None for one a hostile or broken
    bundle mangled (a 400-digit time overflows a float, NaN sorts nowhere)."""
    offset, when = record.get("offset"), record.get("t")
    if not isinstance(offset, int) or not isinstance(when, (int, float)):
        return None
    try:
        seconds = float(when)
    except (OverflowError, ValueError, TypeError):
        return None
    return (offset, seconds) if math.isfinite(seconds) else None


def _line_times(output: Path, lines: set[int]) -> dict[int, float]:
    """When each of *lines* reached the console: the supervisor noted the log's size now and
    then (``output.idx.jsonl``); a line's time is the first note past its start."""
    index = sorted(
        note
        for r in read_jsonl(output.parent / OUTPUT_INDEX)
        if (note := _size_note(r)) is not None
    )
    if not index or not lines:
        return {}
    offsets = [o for o, _ in index]
    wanted = sorted(lines)
    found: dict[int, float] = {}
    line, base = 1, 0
    with open_bundle_file(output) as fh:
        while wanted and (chunk := fh.read(_CHUNK)):
            start = 0
            while wanted and line <= wanted[0]:
                if line == wanted[0]:
                    at = bisect.bisect_left(offsets, base + start + 1)
                    if at < len(index):
                        found[wanted[0]] = index[at][1]
                    wanted.pop(0)
                    continue
                nl = chunk.find(b"\n", start)
                if nl < 0:
                    break
                start, line = nl + 1, line + 1
            base += len(chunk)
    return found


def enrich_from_console(incidents: list[Incident], output: Path | None) -> ConsoleFindings:
    """Add what the console shows to the matching wrap incidents (never a new incident)."""
    found = ConsoleFindings()
    if output is None:
        return found
    events, found.notes, found.tail = console_events(output)
    try:
        times = _line_times(output, {e.line for e in events})
    except OSError:
        times = {}
    for event in events:
        event.time = times.get(event.line)
        target = _match(event, incidents)
        if target is None:
            found.unmatched.append(event)
            continue
        _merge(target, event)
        found.matched += 1
    return found


def _match(event: ConsoleEvent, incidents: list[Incident]) -> Incident | None:
    compatible = [
        i
        for i in incidents
        if i.cause in _DEATHS and (event.signal is None or i.signal in (None, event.signal))
    ]
    by_test = [i for i in compatible if same_node(i.test, event.test)]
    if by_test:
        return by_test[0]
    if event.worker is not None:
        compatible = [i for i in compatible if i.worker in (None, event.worker)]
    if event.time is None:
        return None
    # Printed as it died.  Not by signal alone: a test that crashes a child on purpose
    # prints a dump too, and that death is no incident.
    near = [
        i
        for i in compatible
        if i.time is not None and -_BEFORE_S <= event.time - i.time <= _AFTER_S
    ]
    return min(near, key=lambda i: abs((i.time or 0.0) - (event.time or 0.0)), default=None)


def _merge(target: Incident, event: ConsoleEvent) -> None:
    source = f"{OUTPUT}:{event.line}"
    known = [e.excerpt for e in target.evidence]
    if source not in {e.source for e in target.evidence} and not any(
        event.excerpt.strip() in k for k in known
    ):
        target.evidence.append(Evidence(source=source, excerpt=event.excerpt))
    if event.abort and event.what not in target.summary:
        # The dying library's own words: "... after Rust panic: index out of bounds".
        target.summary += f" after {event.what}"
    if target.native_library is None and event.library is not None:
        target.native_library = event.library
    names = {f.name for s in target.stacks for f in s.frames}
    for stack in event.stacks:
        # A panic's backtrace is new; a fault dump wrap already has is not.
        if stack.frames and not all(f.name in names for f in stack.frames):
            target.stacks.append(replace(stack, pid=stack.pid or target.pid))
    target.extra.setdefault("console", []).append({"line": event.line, "what": event.what})
