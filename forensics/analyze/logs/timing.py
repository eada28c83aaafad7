"""Figures of time a console log or a JUnit report holds about single tests.

How long a test ran, and what its timeout was, weigh a silent death: a test that ran about its
pytest-timeout limit fits the thread method's ``os._exit(1)``; one that died a fraction of a
second into its call does not.  The sources, each read by a pure function here and kept in a
:class:`TestTimes` by the scanner:

* the ``--durations`` table (``==== slowest 5 durations ====`` then ``5.01s call  path::test``);
* JUnit ``time`` attributes (setup, call and teardown together);
* pytest-timeout's own failure, ``Failed: Timeout (>5.0s) from pytest-timeout.``, which names
  the limit the test had (a ``@pytest.mark.timeout`` marker included) when the header does not;
* per-line CI timestamps: pytest announces each test's node id as it starts (``-v``, or
  ``log_cli``, also under xdist); from that line to the ``node down`` of its worker is how long
  the test ran before the worker died;
* live-log times (``-o log_cli=true`` with ``%(asctime)s`` in ``log_cli_format``): the first and
  last dated line of a test's live-log sections, a lower bound of how long it ran.  xdist does
  not show its workers' live logs, so these date serial runs only.

xdist reports a crashed test with a placeholder report (phase ``???``, duration 0): that row of
the table and the JUnit ``time="0.000"`` it becomes measure nothing and are not kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from forensics.analyze.logs.decorations import timestamp

MAX_TESTS = 2000  # tests whose figures are kept; the table and JUnit are bounded by it
STARTS_WINDOW = 256 << 10  # characters looked back from a node-down line for test starts
MAX_START_LOOKBACKS = 16  # node-down lines that get that look back (3 ms each at most)

DURATIONS_HEADER = re.compile(r"^=+ slowest (?:\d+ )?(?:test )?durations =+$")
# The node id runs to the end of the line and is stripped after the match: a lazy ``.*?``
# before ``\s*$`` backtracks over every run of blanks in a hostile row (quadratic).
DURATION_ROW = re.compile(
    r"^(?P<secs>\d+(?:\.\d+)?)s (?P<phase>setup|call|teardown|\?\?\?) +(?P<test>\S.*)$"
)
# "(3 durations < 0.005s hidden.  Use -vv to show these durations.)"
DURATIONS_HIDDEN = re.compile(r"^\(\d+ durations? < [\d.]+s hidden")
LIVE_LOG_HEADER = re.compile(r"^-+ live log (?P<phase>[\w ]+?) -+$")
# log_cli_date_format's default "%H:%M:%S", or a full date ("%Y-%m-%d %H:%M:%S"), optionally
# with milliseconds: what %(asctime)s prints at the start of a live-log line.
LIVE_LOG_TIME = re.compile(
    r"^(?:(?P<date>\d{4}-\d\d-\d\d)[ T])?(?P<h>[01]\d|2[0-3]):(?P<m>[0-5]\d):(?P<s>[0-5]\d)"
    r"(?:[.,](?P<frac>\d{1,6}))?\b"
)
# "Failed: Timeout (>5.0s) from pytest-timeout." (2.x) and "Failed: Timeout >5.0s" (1.x).
TIMEOUT_LIMIT = re.compile(r"Timeout \(?>(?P<secs>\d+(?:\.\d+)?)s\b")
# pytest's nodeid announcement that opens a test's output under -v or log_cli.
# A CI system's own stamp before the program's text (GitHub Actions, GitLab, Jenkins): an ISO
# time with a "T", which %(asctime)s never prints.
CI_STAMP = re.compile(
    r"^\ufeff?(?:\d{4}-\d\d-\d\dT\S+ (?:\d\d[OE]\+? )?|\[\d{4}-\d\d-\d\dT[^\]]*\] )"
)
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# In raw lines, after an optional CI stamp: pytest's announcement of a test (-v, log_cli), or
# xdist's result line for one ("[gw1] [ 33%] PASSED path::test").
START_OR_RESULT = re.compile(
    r"^\ufeff?(?:\d{4}-\d\d-\d\dT\S+ (?:\d\d[OE]\+? )?|\[\d{4}-\d\d-\d\dT[^\]\n]*\] )?"
    r"(?:(?P<test>[\w./\\-]+\.py::\S+) ?\r?$|(?:\[gw\d+\] )?\[ *\d+%\] [A-Z]+ (?P<done>\S+))",
    re.M,
)
ANNOUNCED_TEST = re.compile(r"^(?P<test>[\w./\\-]+\.py::\S+) ?$")
DAY_S = 86400.0
# The outcome pytest prints after a test's live-log lines: the test is over.
RESULT_WORDS = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")


@dataclass
class Ran:
    """How long one test ran, and what says so (quoted by the differential)."""

    secs: float
    source: str  # "durations table" | "JUnit time" | "CI timestamps" | "live log"
    lower_bound: bool = False  # live-log times see only the lines a test logged


@dataclass
class TestTimes:
    """The figures of time a log holds per test (node id as pytest prints it)."""

    durations: dict[str, dict[str, float]] = field(default_factory=dict)
    junit: dict[str, float] = field(default_factory=dict)
    limits: dict[str, float] = field(default_factory=dict)  # from the test's Timeout failure
    limit: float | None = None  # the last limit any Timeout line names
    # Live-log call sections: test -> (first, last) time of day in seconds.
    live: dict[str, tuple[float, float]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # epoch time of its announcement

    def add_duration(self, test: str, phase: str, secs: float) -> None:
        if test in self.durations or len(self.durations) < MAX_TESTS:
            self.durations.setdefault(test, {})[phase] = secs

    def add_junit(self, test: str, secs: float) -> None:
        if len(self.junit) < MAX_TESTS:
            self.junit[test] = secs

    def add_limit(self, test: str | None, secs: float) -> None:
        self.limit = secs
        if test and len(self.limits) < MAX_TESTS:
            self.limits[test] = secs

    def add_live(self, test: str, when: float) -> None:
        first, last = self.live.get(test, (when, when))
        # Past midnight the time of day starts again; records a few milliseconds out of order
        # (threads logging at once) are not a day apart.
        if last - when > DAY_S / 2:
            when += DAY_S
        if test in self.live or len(self.live) < MAX_TESTS:
            self.live[test] = (min(first, when), max(last, when))

    def add_start(self, test: str, when: float) -> None:
        if test in self.started or len(self.started) < MAX_TESTS:
            self.started[test] = when

    def ran(self, test: str | None, ended: float | None = None) -> Ran | None:
        """The best figure of how long *test* ran: its call in the table, then JUnit, then
        from its dated start to *ended* (when its worker went down), then the span of its
        live-log lines (a lower bound)."""
        if not test:
            return None
        key = _find(self.durations, test)
        if key is not None and "call" in self.durations[key]:
            return Ran(self.durations[key]["call"], "durations table")
        key = _find(self.junit, test)
        if key is not None:
            return Ran(self.junit[key], "JUnit time")
        key = _find(self.started, test)
        if key is not None and ended is not None and ended >= self.started[key]:
            return Ran(round(ended - self.started[key], 3), "CI timestamps")
        key = _find(self.live, test)
        if key is not None:
            first, last = self.live[key]
            return Ran(round(last - first, 3), "live log", lower_bound=True)
        return None

    def limit_of(self, test: str | None) -> float | None:
        """The timeout *test* had, as its own Timeout failure says."""
        key = _find(self.limits, test) if test else None
        return self.limits[key] if key is not None else None


def _find(table: Mapping[str, object], test: str) -> str | None:
    """The key naming *test*: the same node id, or one a path prefix apart (JUnit writes
    ``pkg/test_x.py::test_a`` where the console may print ``test_x.py::test_a``)."""
    if test in table:
        return test
    for key in table:
        if key.endswith("/" + test) or test.endswith("/" + key):
            return key
    return None


def duration_row(text: str) -> tuple[str, str, float] | None:
    """``(test, phase, seconds)`` of one row of the ``--durations`` table.

    xdist's placeholder report for a crashed test (``0.00s ???  path::test``) is no
    measurement and gives None, as does anything that is not a row.
    """
    return row_figures(DURATION_ROW.match(text))


def row_figures(row: re.Match[str] | None) -> tuple[str, str, float] | None:
    """:func:`duration_row` of a row already matched (the scanner matches each line once)."""
    if row is None or row.group("phase") == "???":
        return None
    return row.group("test").rstrip(), row.group("phase"), float(row.group("secs"))


def timeout_limit(text: str) -> float | None:
    """The limit a pytest-timeout failure names (``Timeout (>5.0s)``), if the line has one."""
    match = TIMEOUT_LIMIT.search(text)
    return float(match.group("secs")) if match else None


def live_log_time(raw: str) -> float | None:
    """Seconds since midnight of a live-log line's leading ``%(asctime)s``, if it has one."""
    if "\x1b" in raw[:120]:
        raw = ANSI.sub("", raw[:120])
    match = LIVE_LOG_TIME.match(CI_STAMP.sub("", raw[:120], count=1))
    if match is None:
        return None
    frac = match.group("frac")
    secs = int(match.group("h")) * 3600 + int(match.group("m")) * 60 + int(match.group("s"))
    return secs + (float(f"0.{frac}") if frac else 0.0)


def live_log_phase(text: str) -> str | None:
    """The phase a ``---- live log call ----`` header opens (call, setup, teardown...)."""
    match = LIVE_LOG_HEADER.match(text)
    return match.group("phase") if match else None


def test_starts(window: str) -> list[tuple[str, float]]:
    """``(test, epoch time)`` of the tests announced in *window* (raw lines) and not finished
    in it: the tests the workers were running at its end.

    One regular expression finds announcements and result lines; only the few tests left
    open are dated, so a long window of a verbose log costs one pass in C.
    """
    running: dict[str, int] = {}
    for match in START_OR_RESULT.finditer(window):
        test = match.group("test")
        if test is not None:
            running.pop(test, None)
            running[test] = match.start()
        else:
            running.pop(match.group("done"), None)
    found = []
    for test, at in running.items():
        end = window.find("\n", at)
        when = timestamp(window[at : end if end >= 0 else len(window)])
        if when is not None:
            found.append((test, when))
    return found


def announced_test(text: str | None) -> str | None:
    """The node id of pytest's ``path::test`` announcement line (-v, log_cli)."""
    if not text:
        return None
    match = ANNOUNCED_TEST.match(text)
    return match.group("test") if match else None
