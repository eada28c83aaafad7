"""JUnit XML (pytest ``--junitxml`` and other runners) into the scanner's findings.

Parsed incrementally with ``xml.etree``'s pull parser, clearing each finished test case, so a
large report stays in bounded memory.  Documents with a DOCTYPE or ENTITY declaration are
refused before parsing: JUnit never needs them, and refusing them rules out entity-expansion
attacks (billion laughs, external entities) without a third-party parser.  The check reads the
prolog as text in the document's own encoding (UTF-16 and UTF-32 included, found from the byte
order mark or the zero bytes around the first "<", as the XML spec's appendix F does), so a
declaration cannot hide in a wide encoding.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import IO

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.findings import (
    CrashedItem,
    NodeDown,
    PythonFailure,
    Summary,
    TimeoutDump,
)
from forensics.analyze.logs.scan.logscan import MAX_RECORDS, LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.logs.timing import timeout_limit
from forensics.errors import InputError
from forensics.model import TestCounts

CHUNK = 1 << 20
PROLOG_LIMIT = 1 << 20  # bytes before the root element we are willing to read
ROOT_RE = re.compile(r"<\s*(?:[\w.-]+:)?testsuites?\b")
FORBIDDEN = ("<!DOCTYPE", "<!ENTITY")

_BOMS = (
    (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe\x00\x00", "utf-32-le"),
    (b"\xfe\xff", "utf-16-be"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xef\xbb\xbf", "utf-8"),
)
# Which of the first four bytes are zero, without a byte order mark.
_ZEROS = {
    (True, True, True, False): "utf-32-be",
    (False, True, True, True): "utf-32-le",
    (True, False, True, False): "utf-16-be",
    (False, True, False, True): "utf-16-le",
}


def _encoding(head: bytes) -> str:
    """The encoding to read the prolog in; latin-1 for every ASCII-compatible one."""
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    return _ZEROS.get(tuple(b == 0 for b in head[:4]), "latin-1")  # type: ignore[arg-type]


def _as_text(data: bytes, encoding: str) -> str:
    text = data.decode(encoding, "replace")
    return text.lstrip("\ufeff")


def looks_like_junit(head: bytes) -> bool:
    """True when the first bytes of a stream are a JUnit XML document."""
    full = _as_text(head, _encoding(head))
    text = full.lstrip(" \t\r\n")
    return (text.startswith("<?xml") and bool(ROOT_RE.search(full))) or text.startswith(
        "<testsuite"
    )


def _nodeid(case: ET.Element) -> str:
    name = case.get("name") or "?"
    file = case.get("file")
    classname = case.get("classname") or ""
    if file:
        parts = [p for p in classname.split(".") if p[:1].isupper()]
        return "::".join([file.replace("\\", "/"), *parts, name])
    if not classname:
        return name
    # pytest writes "pkg.test_mod.TestClass": modules are lowercase, classes capitalised.
    pieces = classname.split(".")
    classes: list[str] = []
    while pieces and pieces[-1][:1].isupper():
        classes.insert(0, pieces.pop())
    path = "/".join(pieces) + ".py" if pieces else ""
    return "::".join([p for p in (path, *classes, name) if p])


def scan_junit(stream: IO[bytes], source: str) -> LogScan:
    """Read a JUnit XML stream into a :class:`LogScan` (failures, crashed workers, timeouts)."""
    scan = LogScan(source=source)
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    prolog = b""
    checked = False
    counts = TestCounts()
    duration = 0.0
    seen_suite_time = False
    index = 0

    def drain() -> None:
        nonlocal index, duration
        for _event, elem in parser.read_events():  # type: ignore[misc]
            if not isinstance(elem, ET.Element):
                continue
            tag = elem.tag.rsplit("}", 1)[-1]
            if tag == "testcase":
                index += 1
                _case(scan, elem, index, counts)
                elem.clear()
            elif tag == "testsuite" and not seen_suite_time:
                try:
                    duration += float(elem.get("time") or 0)
                except ValueError:
                    pass
                elem.clear()

    try:
        while True:
            chunk = stream.read(CHUNK)
            if not chunk:
                break
            if not checked:
                prolog += chunk
                _check_prolog(prolog, source)
                if ROOT_RE.search(_as_text(prolog, _encoding(prolog))) is None and (
                    len(prolog) < PROLOG_LIMIT
                ):
                    continue
                checked, chunk, prolog = True, prolog, b""
            parser.feed(chunk)
            drain()
        if prolog:
            parser.feed(prolog)
        parser.close()
        # The last feed and close() produce events too: the whole document when it was short.
        drain()
    # LookupError: an unknown encoding in the XML declaration; ValueError covers UnicodeError.
    except (ET.ParseError, LookupError, ValueError) as exc:
        scan.notes.append(f"{source}: JUnit XML is malformed ({exc}); read up to the error")
    scan.summary = Summary(counts, duration or None, 0)
    scan.lines = index
    return scan


def _check_prolog(prolog: bytes, source: str) -> None:
    """Refuse a DOCTYPE or ENTITY before the root element, in whatever encoding it is written."""
    text = _as_text(prolog, _encoding(prolog))
    root = ROOT_RE.search(text)
    if any(bad in (text[: root.start()] if root else text) for bad in FORBIDDEN):
        raise InputError(f"{source}: XML with DOCTYPE/ENTITY declarations is refused (not JUnit)")


def _seconds(case: ET.Element) -> float | None:
    try:
        secs = float(case.get("time") or "nan")
    except ValueError:
        return None
    return secs if secs >= 0 else None  # NaN and negatives compare false: not a figure


def _case(scan: LogScan, case: ET.Element, index: int, counts: TestCounts) -> None:
    test = _nodeid(case)
    secs = _seconds(case)
    problem = None
    kind = "failed"
    for child in case:
        tag = child.tag.rsplit("}", 1)[-1]
        if tag in ("failure", "error"):
            problem, kind = child, "failed" if tag == "failure" else "error"
            break
        if tag == "skipped":
            counts.skipped += 1
            return
    if problem is None:
        counts.passed += 1
        if secs is not None:
            scan.times.add_junit(test, secs)
        return
    if kind == "failed":
        counts.failed += 1
    else:
        counts.error += 1
    message = (problem.get("message") or "").strip()
    text = (problem.text or "").strip()
    excerpt = (message or text.splitlines()[0] if (message or text) else test)[:400]
    crashed = P.CRASHED_ITEM.search(message) or P.CRASHED_ITEM.search(text[:2000])
    # xdist's report of a crashed test carries no duration (time="0.000"): it is not kept.
    if secs is not None and not crashed:
        scan.times.add_junit(test, secs)
    if crashed and len(scan.crashed_items) < MAX_RECORDS:
        scan.crashed_items.append(
            CrashedItem(crashed.group("worker"), crashed.group("test"), index, excerpt)
        )
        scan.node_downs.append(
            NodeDown(crashed.group("worker"), "crashed (from JUnit)", index, excerpt)
        )
        return
    first = message.splitlines()[0] if message else (text.splitlines()[-1] if text else "")
    match = P.EXC_LINE.match(first.strip())
    exc_type = match.group("type") if match else problem.get("type")
    msg = (match.group("msg") or "") if match else first
    if exc_type and "." in exc_type and not match:
        exc_type = exc_type.rsplit(".", 1)[-1]
    head = f"{exc_type}: {msg}" if exc_type else msg
    if P.TIMEOUT_FAILED.search(head) and len(scan.timeouts) < MAX_RECORDS:
        scan.timeouts.append(TimeoutDump(test, index, excerpt))
        limit = timeout_limit(head)
        if limit is not None:
            scan.times.add_limit(test, limit)
        return
    if len(scan.failures) < MAX_RECORDS:
        scan.failures.append(
            PythonFailure(
                test,
                kind,
                exc_type,
                msg[:300],
                normalize(head),
                index,
                excerpt,
                phase="call" if kind == "failed" else None,
            )
        )
