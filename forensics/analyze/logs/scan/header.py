"""pytest's session header: python, platform, plugins, pytest-timeout's settings, xdist's
worker count, when the tests began, and ``rootdir:`` (to turn frame paths into node ids).
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.decorations import timestamp
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.logscan import LogScan, cap


class Header:
    """The header's lines, read into :attr:`LogScan.header` and :attr:`LogScan.rootdir`."""

    def __init__(self, scan: LogScan) -> None:
        self.scan = scan

    def rootdir(self, line: Line) -> bool:
        root = P.ROOTDIR.match(line.text)
        if not root:
            return False
        self.scan.rootdir = root.group("dir").rstrip(",")
        return True

    def line(self, line: Line) -> bool:
        """A header line (the prefix picks its parser); False when the line is none."""
        text = line.text
        head = self.scan.header
        if text.startswith("platform "):
            match = P.HEADER_PLATFORM.match(text)
            if match:
                head.platform, head.python = match.group("platform"), match.group("python")
                head.pytest = match.group("pytest")
        elif text.startswith("plugins: "):
            match = P.HEADER_PLUGINS.match(text)
            if match:
                head.plugins_seen = True
                for item in P.HEADER_PLUGIN.finditer(match.group("list")):
                    head.plugins[item.group("name")] = item.group("version")
        elif text.startswith("timeout: "):
            match = P.HEADER_TIMEOUT.match(text)
            if match:
                head.timeout_s = float(match.group("secs"))
        elif text.startswith("timeout method: "):
            match = P.HEADER_TIMEOUT_METHOD.match(text)
            if match:
                head.timeout_method = match.group("method")
        elif text.startswith("created: "):
            match = P.HEADER_CREATED.match(text)
            if match:
                head.workers = int(match.group("total"))
        else:
            match = P.HEADER_BEGIN.match(text)
            if match:
                head.workers = head.workers or int(match.group("workers"))
                head.began = timestamp(line.dated)
        if match is None:
            return False
        if len(head.lines) < 16:
            head.lines.append((line.lineno, cap(text, 200)))
        return True
