"""Failures an excerpt shows only in part, when nothing else in it explains the run.

People paste the end of a failure section ("E   RuntimeError: Event loop is closed" without the
section's title), or the panic a Rust extension printed ("thread '<unnamed>' panicked at ...")
without the PanicException PyO3 raised for it in Python.  In a whole log these sit inside a
section or next to a summary, which name the test; in an excerpt that holds no crash, kill,
dump, report or summary they are the only account of the run: a failure whose test is unknown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from forensics.analyze.logs.death_lines import RUST_ABORTING
from forensics.analyze.logs.findings import NativeAbort


class _Scan(Protocol):
    # Read-only, so any list of records fits (the scan's lists are of its own record types).
    @property
    def failures(self) -> Sequence[object]: ...
    @property
    def faults(self) -> Sequence[object]: ...
    @property
    def kills(self) -> Sequence[object]: ...
    @property
    def timeouts(self) -> Sequence[object]: ...
    @property
    def node_downs(self) -> Sequence[object]: ...
    @property
    def internal_errors(self) -> Sequence[object]: ...
    @property
    def tracebacks(self) -> Sequence[object]: ...
    @property
    def native_aborts(self) -> Sequence[NativeAbort]: ...


@dataclass(frozen=True)
class Partial:
    """The exception of a failure the excerpt shows only part of."""

    exc_type: str
    message: str
    line: int
    excerpt: str
    test: str | None = None
    worker: str | None = None


def _unexplained(scan: _Scan) -> bool:
    """Whether the log holds no other account of the run: no failure, crash, kill or dump."""
    others = (scan.failures, scan.faults, scan.kills, scan.timeouts, scan.node_downs)
    return not any(others) and not scan.internal_errors and not scan.tracebacks


def loose_failure(scan: _Scan, loose: tuple[str, str, int, str] | None) -> Partial | None:
    """A stray "E" line's exception (type, message, line, text), when it is all there is."""
    if loose is None or scan.native_aborts or not _unexplained(scan):
        return None
    exc_type, message, line, text = loose
    return Partial(exc_type, message, line, text)


def caught_panic(scan: _Scan) -> Partial | None:
    """A Rust panic that nothing aborted, when it is all there is: PyO3 raised it in Python.

    A panic that cannot unwind, a second panic, a fatal runtime error or any other runtime's
    abort is a death (logs/native_aborts.py), and so is a shell's report of one (a kill).
    """
    natives = scan.native_aborts
    if not natives or not _unexplained(scan):
        return None
    if any(n.kind != "rust-panic" or RUST_ABORTING.search(n.message) for n in natives):
        return None
    first = natives[0]
    where = f" (panicked at {first.location})" if first.location else ""
    return Partial(
        "pyo3_runtime.PanicException",
        f"{first.message}{where}",
        first.line,
        first.excerpt,
        first.test,
        first.worker,
    )
