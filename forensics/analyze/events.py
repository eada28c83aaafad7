"""The events a run reported rather than died of, the same for a bundle and a raw log.

A bundle's agent records a failed test's phase and message; a log prints a failure section, a
summary line or a JUnit case. Either way it becomes a :class:`PythonFailure`. pytest's
``INTERNALERROR`` is recorded by the controller's agent or printed with its ``INTERNALERROR>``
prefix; either way it becomes an :class:`InternalError`, parsed by the log scanner in both cases.
``analyze/classify.py`` then decides their cause with one rule set.  (Deaths have their own event,
``differential.DeathFacts``, weighed by one rule set in ``analyze/differential.py``.)

``line`` orders events within their source: a log's line number, or a bundle record's time.
``source`` says where the evidence was read ("ci.log:120", "workers/4242.jsonl").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class InternalError:
    """A pytest ``INTERNALERROR``; ``ref`` names a known upstream issue."""

    exc_type: str | None
    message: str
    line: int
    excerpt: str
    where: str | None = None  # innermost "file:function" of the traceback
    ref: str | None = None
    in_xdist: bool = False
    source: str | None = None

    @property
    def head(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.exc_type else self.message


@dataclass
class PythonFailure:
    """A failed or errored test (agent record, summary line, failure section, or JUnit case)."""

    test: str | None
    kind: str  # "failed" | "error"
    exc_type: str | None
    message: str
    signature: str
    line: int
    excerpt: str
    worker: str | None = None
    phase: str | None = None
    source: str | None = None
    # What only a bundle knows: the process, when it ended, what the worker ran before it, the
    # command that reruns it and where the test is defined.
    pid: int | None = None
    time: float | None = None
    prior_tests: list[str] = field(default_factory=list)
    repro: str | None = None
    location: dict[str, Any] | None = None

    @property
    def head(self) -> str:
        return f"{self.exc_type}: {self.message}" if self.exc_type else self.message
