"""Strip what CI systems add to each line, so patterns see what pytest printed.

Handled: ANSI colour and erase codes; GitHub Actions timestamps and ``##[group]``-style
workflow commands; GitLab section markers (``section_start:...\\r``) and timestamps; Jenkins
``[Pipeline]`` and timestamper prefixes; the ``[gwN]`` prefix xdist puts on worker lines
(returned separately, because it names the worker); the tab a paste indents every line with
(pytest, faulthandler and CI runners indent with spaces, never start a line with a tab).
"""

from __future__ import annotations

import re
from datetime import datetime

ANSI_RE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]"
)
# 2024-05-01T12:00:00.1234567Z, optionally followed by GitLab's "00O " stream marker.
TIMESTAMP_RE = re.compile(
    r"^\ufeff?(?P<ts>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) "
    r"(?:\d\d[OE]\+? )?"
)
JENKINS_RE = re.compile(
    r"^(?:\[Pipeline\] |\[(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z?)\] |\d\d:\d\d:\d\d(?:\.\d+)? +)"
)
WORKFLOW_CMD_RE = re.compile(
    r"^##\[(?:group|endgroup|error|warning|notice|debug|command|section)\]"
)
WORKER_RE = re.compile(r"^\[(?P<worker>gw\d+)\] ")


def strip(line: str) -> tuple[str, str | None]:
    """Return (the line as the program printed it, the xdist worker named by its prefix)."""
    line = line.rstrip("\r\n")
    if line[:1] == "\t":
        line = line[1:]
    if "\x1b" in line:
        line = ANSI_RE.sub("", line)
    if "\r" in line:
        # Progress bars and GitLab section markers redraw the line; the last frame is the text.
        parts = [p for p in line.split("\r") if p]
        line = parts[-1] if parts else ""
    if line[:1].isdigit() or line[:1] == "\ufeff":
        line = TIMESTAMP_RE.sub("", line, count=1)
    if line[:1] == "[" or line[:1].isdigit():
        line = JENKINS_RE.sub("", line, count=1)
    if line.startswith("##["):
        line = WORKFLOW_CMD_RE.sub("", line, count=1)
    worker = None
    if line.startswith("[gw"):
        match = WORKER_RE.match(line)
        if match:
            worker = match.group("worker")
            line = line[match.end() :]
    return line, worker


def timestamp(line: str) -> float | None:
    """The epoch time of a CI timestamp prefix (GitHub Actions, GitLab, Jenkins), if any."""
    line = ANSI_RE.sub("", line[:80]) if "\x1b" in line[:80] else line
    match = TIMESTAMP_RE.match(line) or JENKINS_RE.match(line)
    if not match or not match.groupdict().get("ts"):
        return None
    raw = match.group("ts").replace(",", ".").replace(" ", "T")
    if raw.endswith("Z"):
        raw = raw[:-1] + "+00:00"
    # fromisoformat in 3.10 accepts at most 6 fractional digits; GitHub prints 7.
    raw = re.sub(r"(\.\d{6})\d+", r"\1", raw)
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None
