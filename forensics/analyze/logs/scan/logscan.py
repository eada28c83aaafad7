"""The scanner's findings for one source (:class:`LogScan`), and the bounds every parser keeps.

Each list holds at most ``MAX_RECORDS`` records (past that only ``dropped`` grows) and each
excerpt at most ``MAX_EXCERPT`` characters, so memory does not grow with the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs import timing
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
from forensics.analyze.logs.kernel import KernelFault

T = TypeVar("T")

MAX_RECORDS = 2000  # per kind; past this only the count grows
MAX_FRAMES = 256
MAX_EXCERPT = 400


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

    def add(self, items: list[T], item: T) -> None:
        """Append *item* to one of this scan's lists unless the list is full."""
        if len(items) < MAX_RECORDS:
            items.append(item)
        else:
            self.dropped += 1


def cap(text: str, limit: int = MAX_EXCERPT) -> str:
    """*text* cut to *limit* characters, marked with "..." when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exc_parts(text: str) -> tuple[str | None, str]:
    """(exception type, message) of an ``ExcType: message`` line; (None, text) otherwise."""
    match = P.EXC_LINE.match(text.strip())
    if not match:
        return None, text.strip()
    return match.group("type"), (match.group("msg") or "").strip()
