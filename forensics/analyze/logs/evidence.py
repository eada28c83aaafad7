"""Evidence lines of a log: an excerpt at ``source:LINE``, and the line number read back."""

from __future__ import annotations

from forensics.analyze.logs.scan import LogScan
from forensics.model import Evidence


def ev(scan: LogScan, line: int, excerpt: str) -> Evidence:
    """An excerpt of *scan*'s log at *line*."""
    return Evidence(f"{scan.source}:{line}", excerpt)


def line_of(source: str) -> int | None:
    """The line number of an evidence's ``path:LINE``."""
    number = source.rsplit(":", 1)[-1]
    return int(number) if number.isdigit() else None
