"""``forensics analyze``: raw CI logs and JUnit XML into the same triage as ``report``.

Public API:
  analyze_logs(paths) -> Triage          many logs ('-' is stdin, .gz read transparently)
  scan_lines(lines, source) -> LogScan   the streaming scanner over text lines
  signatures.normalize(text) -> str      the grouping signature

Names are loaded on first use, so importing ``forensics.analyze.logs.signatures`` (as other
commands do at start-up) does not pull in the scanner and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forensics.analyze.logs.analyze import analyze_logs, scan_path
    from forensics.analyze.logs.scan import scan_lines
    from forensics.analyze.logs.scan.logscan import LogScan
    from forensics.analyze.logs.signatures import normalize

__all__ = ["LogScan", "analyze_logs", "normalize", "scan_lines", "scan_path"]

_HOMES = {
    "analyze_logs": "forensics.analyze.logs.analyze",
    "scan_path": "forensics.analyze.logs.analyze",
    "LogScan": "forensics.analyze.logs.scan.logscan",
    "scan_lines": "forensics.analyze.logs.scan",
    "normalize": "forensics.analyze.logs.signatures",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
