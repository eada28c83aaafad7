"""pytest-xdist's reports about its workers, and the results each worker printed.

``[gwN] node down: <reason>`` (dated, with the worker's silence before it when the log is
timestamped), ``worker 'gwN' crashed while running '<test>'``, ``replacing crashed worker``,
``maximum crashed workers reached``, and the per-test ``FAILED``/``ERROR`` progress lines that
tell which test a worker was running when it died.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.decorations import timestamp
from forensics.analyze.logs.findings import CrashedItem, NodeDown, ProgressResult, WorkerEvent
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.logscan import LogScan, cap


class Workers:
    """xdist's worker lines; :attr:`last_seen` is filled by the reader."""

    def __init__(self, scan: LogScan) -> None:
        self.scan = scan
        # worker -> epoch time of its last line before the one being fed (set by the reader,
        # which can look back in its buffer; the scanner itself sees trigger lines only)
        self.last_seen: dict[str, float] = {}

    def node_down(self, line: Line) -> bool:
        match = P.NODE_DOWN.search(line.text)
        if not match:
            return False
        down = NodeDown(
            line.worker or match.group("worker"),
            match.group("reason").strip(),
            line.lineno,
            cap(line.text),
        )
        self.scan.add(self.scan.node_downs, self._timed(down, line, at_start=match.start() == 0))
        return True

    def _timed(self, down: NodeDown, line: Line, at_start: bool) -> NodeDown:
        """Date a node-down line and measure the worker's silence before it, where it can be."""
        now = timestamp(line.raw)
        if now is None:
            return down
        down.time = now
        began = self.scan.header.began
        if began is not None:
            down.since_begin_s = round(max(0.0, now - began), 3)
        seen = self.last_seen.get(down.worker or "")
        if seen is not None:
            down.silent_s, down.silent_of = round(max(0.0, now - seen), 3), "worker"
        elif at_start and line.prev is not None:
            # Nothing else on this line: the log was silent since the line before.
            before = timestamp(line.prev)
            if before is not None:
                down.silent_s, down.silent_of = round(max(0.0, now - before), 3), "log"
        return down

    def crashed_item(self, line: Line) -> bool:
        match = P.CRASHED_ITEM.search(line.text)
        if not match:
            return False
        self.scan.add(
            self.scan.crashed_items,
            CrashedItem(match.group("worker"), match.group("test"), line.lineno, cap(line.text)),
        )
        return True

    def replaced(self, line: Line) -> bool:
        """``replacing crashed worker gwN``, ``maximum crashed workers reached``."""
        text = line.text
        rep = P.REPLACING.search(text)
        top = P.MAX_CRASHED.search(text)
        if not (rep or top):
            return False
        kind = "replaced" if rep else "max-crashed"
        who = rep.group("worker") if rep else None
        events = self.scan.worker_events
        # xdist repeats "maximum crashed workers reached" in the summary banner.
        if kind == "replaced" or all(e.kind != kind for e in events):
            self.scan.add(events, WorkerEvent(kind, who, line.lineno, cap(text)))
        return True

    def result(self, line: Line) -> bool:
        """A test's FAILED/ERROR progress line, with the worker that ran it."""
        text, worker = line.text, line.worker
        prog = P.PROGRESS_RESULT.match(text)
        if prog:
            test = prog.group("test") or prog.group("test2")
            kind = prog.group("kind") or prog.group("kind2")
            self.scan.add(self.scan.progress, ProgressResult(worker, test, kind, line.lineno))
            return True
        tagged = P.PREFIXED_RESULT.search(text) if worker is None and "[gw" in text else None
        if not tagged:
            return False
        self.scan.add(
            self.scan.progress,
            ProgressResult(
                tagged.group("worker"), tagged.group("test"), tagged.group("kind"), line.lineno
            ),
        )
        return True
