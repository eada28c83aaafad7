"""What the scanner finds: plain records with the log line they came from.

Every record keeps ``line`` (1-based line number in its source) and ``excerpt`` (the
decoration-stripped text, bounded), so incidents can cite ``path:LINE``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The events a log shares with a bundle live in analyze/events.py; re-exported for the scanner.
from forensics.analyze.events import InternalError as InternalError
from forensics.analyze.events import PythonFailure as PythonFailure
from forensics.model import Frame, Stack, TestCounts


@dataclass
class NodeDown:
    """``[gwN] node down: <reason>``: xdist lost a worker.

    With per-line CI timestamps: ``time`` (epoch s); ``silent_s``, how long nothing came
    from the worker before (``silent_of`` "worker": since its own last line; "log": since the
    line before, when the whole log was silent, which the worker then was too); and
    ``since_begin_s``, from the start of the tests, an upper bound of the worker's silence.
    """

    worker: str | None
    reason: str
    line: int
    excerpt: str
    time: float | None = None
    silent_s: float | None = None
    silent_of: str | None = None  # "worker": its own last line; "log": the line before
    since_begin_s: float | None = None


@dataclass
class SessionHeader:
    """What pytest's session header says: the facts a silent worker death is weighed by."""

    platform: str | None = None
    python: str | None = None
    pytest: str | None = None
    plugins: dict[str, str] = field(default_factory=dict)
    plugins_seen: bool = False
    timeout_s: float | None = None
    timeout_method: str | None = None
    workers: int | None = None
    # Epoch time of "N workers [M items]" (the tests begin), when the log is timestamped.
    began: float | None = None
    # (line number, text) of the lines read: pytest-timeout's show up as evidence.
    lines: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class CrashedItem:
    """``worker 'gwN' crashed while running 'test'``: the test a dead worker was running."""

    worker: str
    test: str
    line: int
    excerpt: str


@dataclass
class ProgressResult:
    """A per-test result line: ``[gw3] [ 45%] FAILED path::test`` or ``path::test FAILED``."""

    worker: str | None
    test: str
    kind: str  # "FAILED" | "ERROR"
    line: int


@dataclass
class WorkerEvent:
    """``replacing crashed worker gwN`` or ``maximum crashed workers reached: N``."""

    kind: str  # "replaced" | "max-crashed"
    worker: str | None
    line: int
    excerpt: str


@dataclass
class FaultRecord:
    """A faulthandler block: ``Fatal Python error: <what>`` (fatal) or a thread dump (dump)."""

    fatal: str | None
    signal: str | None
    line: int
    excerpt: str
    worker: str | None = None  # from a ``[gwN]`` prefix, rarely present
    test: str | None = None  # from ``path::test Fatal Python error`` (pytest -v)
    stacks: list[Stack] = field(default_factory=list)
    # Set for a ``faulthandler_timeout`` dump ("Timeout (0:05:00)!"), which means a hang.
    timeout: str | None = None
    # "tests/x.py ..Fatal Python error": the file whose test crashed, when no node id is printed.
    progress_file: str | None = None


@dataclass
class Traceback:
    """A bare ``Traceback (most recent call last):`` block outside pytest's reports."""

    exc_type: str | None
    message: str
    frames: list[Frame]
    line: int
    excerpt: str
    signature: str


@dataclass
class TimeoutDump:
    """A pytest-timeout dump (``+++ Timeout +++`` with ``~~~ Stack of ...``) or its failure."""

    test: str | None
    line: int
    excerpt: str
    worker: str | None = None
    stacks: list[Stack] = field(default_factory=list)
    # A banner printed as the timer fired (not in a failure section at the end), in a log with
    # per-line times: how long the log was silent before it.
    silent_s: float | None = None


@dataclass
class NativeAbort:
    """A native abort precursor: Rust panic, ``fatal runtime error``, C++ ``terminate``."""

    kind: str  # "rust-panic" | "rust-fatal" | "rust-abort" | "cpp-terminate" | "cxx-uncaught"
    # | "ns-exception" | "objc-fork" | "macos-crash-report"
    message: str
    line: int
    excerpt: str
    library: str | None = None
    frames: list[Frame] = field(default_factory=list)
    worker: str | None = None
    # The signal the runtime ends the process with (abort() for all but a crash report's own).
    signal: str | None = None
    test: str | None = None  # the test pytest was running, from the progress around it
    location: str | None = None  # a Rust panic's "src/x.rs:L:C"


@dataclass
class KillEvent:
    """Evidence of a process ended from outside or by the shell's report of a signal.

    ``kind``: "oom" (kernel OOM line), "shell-signal" (``Killed``, ``Segmentation fault
    (core dumped)``...), "exit-code" (``exit code 137``), "canceled" (CI cancel/timeout).
    """

    kind: str
    line: int
    excerpt: str
    signal: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    process: str | None = None
    # Seconds of silence before this line, when CI timestamps tell (a hang before a cancel).
    silence_s: float | None = None
    test: str | None = None  # the test pytest was running, from the progress around it
    what: str | None = None  # the status's own name: "access violation" for 0xC0000005


@dataclass
class InfraError:
    """A network/registry failure line: connection refused/reset, DNS, HTTP 5xx, timeouts."""

    text: str
    line: int
    host: str | None = None


@dataclass
class Summary:
    """The final pytest line: ``== 3 failed, 10 passed, 1 skipped, 2 errors in 4.2s ==``."""

    counts: TestCounts
    duration_s: float | None
    line: int
