"""``forensics analyze``: raw CI logs and JUnit XML into the same triage as ``report``.

Public API:
  analyze_logs(paths) -> Triage      many logs ('-' is stdin, .gz read transparently)
  scan_lines(lines, source) -> LogScan   the streaming scanner over text lines
  signatures.normalize(text) -> str  the grouping signature
"""

from __future__ import annotations

from forensics.analyze.logs.analyze import analyze_logs, scan_path
from forensics.analyze.logs.scan import LogScan, scan_lines
from forensics.analyze.logs.signatures import normalize

__all__ = ["LogScan", "analyze_logs", "normalize", "scan_lines", "scan_path"]
