"""Strip what CI systems add to each line, so patterns see what pytest printed.

Handled: ANSI colour and erase codes; GitHub Actions timestamps and ``##[group]``-style
workflow commands; GitLab section markers (``section_start:...\\r``) and timestamps; Jenkins
``[Pipeline]`` and timestamper prefixes; the ``[gwN]`` prefix xdist puts on worker lines
(returned separately, because it names the worker); the tab a paste indents every line with
(pytest, faulthandler and CI runners indent with spaces, never start a line with a tab).
Only the decoration goes: the spaces after it are the line's own (a traceback's or a thread
dump's indent), and indented blocks are read by them.
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
# The timestamper's pipeline form "[2024-05-01T10:00:00.123Z] " has one space; its clock form
# has two in the plain-text view ("timestamps/?time=HH:mm:ss&appendLog") and one in a copy of
# the HTML console ("<b>HH:mm:ss</b> "), so the gap of a clock is told by LogDecorations.
JENKINS_RE = re.compile(
    r"^(?:\[Pipeline\] |\[(?P<ts>\d{4}-\d\d-\d\dT[\d:.]+Z?)\] "
    r"|\d\d:\d\d:\d\d(?:\.\d+)?(?P<gap> +))"
)
CLOCK_GAP = 2  # the widest gap a Jenkins clock is printed with
WORKFLOW_CMD_RE = re.compile(
    r"^##\[(?:group|endgroup|error|warning|notice|debug|command|section)\]"
)
WORKER_RE = re.compile(r"^\[(?P<worker>gw\d+)\] ")


class LogDecorations:
    """:func:`strip` for the lines of one log, in order: it learns the gap after a Jenkins
    clock from the log, so a line keeps its own indent whichever view the log was saved from.

    The gap is the narrowest run of spaces seen after a clock (a flush line shows it; a
    faulthandler or timeout dump's header is flush and comes before its indented frames).
    Before any flush line, a run is read as the widest gap.
    """

    def __init__(self) -> None:
        self.gap = CLOCK_GAP

    def strip(self, line: str) -> tuple[str, str | None]:
        """Return (the line as the program printed it, the xdist worker named by its prefix)."""
        return _strip(line, self)


def strip(line: str) -> tuple[str, str | None]:
    """Return (the line as the program printed it, the xdist worker named by its prefix).

    Without the log's other lines a Jenkins clock's gap is a guess (the widest, so a
    flush line is right and an indented one may lose a space): a reader of indented
    blocks strips with :class:`LogDecorations`.
    """
    return _strip(line, None)


def _strip(line: str, log: LogDecorations | None) -> tuple[str, str | None]:
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
        match = JENKINS_RE.match(line)
        if match is not None and match.group("gap") is None:
            line = line[match.end() :]
        elif match is not None:
            # A clock: the spaces past its gap are the line's own indent.
            run = match.end() - match.start("gap")
            if log is not None and run < log.gap:
                log.gap = run
            line = line[match.start("gap") + min(run, log.gap if log else CLOCK_GAP) :]
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
