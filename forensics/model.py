"""The typed triage model (schema ``forensics.triage/1``).

Every view is drawn from a :class:`Triage`; its :meth:`Triage.to_dict` is the JSON contract in
DESIGN.md.  Fields beyond the contract are welcome, but a field in the contract never changes
meaning without a new schema string.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from forensics.rules import is_harness_path

TRIAGE_SCHEMA = "forensics.triage/1"

Cause = Literal[
    "native-crash",
    "oom-kill",
    "external-kill",
    "unexpected-exit",
    "hang",
    "xdist-internal",
    "python-exception",
    "infrastructure",
    "unknown",
]
CAUSES: tuple[str, ...] = get_args(Cause)
Confidence = Literal["high", "medium", "low"]
Phase = Literal["setup", "call", "teardown", "collect"]


@dataclass
class Frame:
    name: str
    file: str | None = None
    line: int | None = None
    native: bool = False
    # For native frames: the shared object the frame lives in, when known.
    library: str | None = None


def is_harness_frame(frame: Frame) -> bool:
    """Test-harness and tooling code on every stack of a test process: never the suspect, and
    in a view it is dimmed so the test's own frames and the library it called stand out."""
    return not frame.native and is_harness_path(frame.file)


@dataclass
class Stack:
    pid: int | None
    thread: str
    frames: list[Frame] = field(default_factory=list)
    # How the stack was taken: "faulthandler", "py-spy", "pytest-timeout", "log".
    method: str | None = None
    # Where the process was when the stack was taken: "idle", "active", "D-state"...
    state: str | None = None
    # The reader's facts about the thread, when it has them; ``thread`` is the label shown.
    tid: int | None = None  # the kernel's thread id (py-spy), not faulthandler's pthread id
    thread_name: str | None = None
    holds_gil: bool = False


@dataclass
class Evidence:
    source: str
    excerpt: str


@dataclass
class Secondary:
    cause: str
    summary: str
    ref: str | None = None


@dataclass
class Incident:
    id: str
    cause: str
    confidence: str
    summary: str
    worker: str | None = None
    pid: int | None = None
    signal: str | None = None
    exit_code: int | None = None
    test: str | None = None
    phase: str | None = None
    prior_tests: list[str] = field(default_factory=list)
    native_library: str | None = None
    secondary: list[Secondary] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    stacks: list[Stack] = field(default_factory=list)
    repro: str | None = None
    # Extra fields (allowed by the contract): a grouping signature, memory facts, hang
    # diagnosis, repeat links, and when the incident happened (epoch seconds).
    signature: str | None = None
    # OOM incidents: {"limit_bytes", "peak_rss_bytes", "top_growth": [{"test", "rss_delta_bytes"}]}
    memory: dict[str, Any] | None = None
    time: float | None = None
    repeat_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TestCounts:
    passed: int = 0
    failed: int = 0
    error: int = 0
    skipped: int = 0


@dataclass
class Run:
    command: list[str] | None = None
    exit_code: int | None = None
    duration_s: float | None = None
    tests: TestCounts = field(default_factory=TestCounts)
    start: float | None = None
    end: float | None = None
    cwd: str | None = None
    host: dict[str, Any] = field(default_factory=dict)
    # Whether the supervisor wrote its end record; False means it was itself killed.
    complete: bool = True
    # The command failed before any test ran: {"exit_code", "stage": "startup"|"collection",
    # "error": the lines that say why}.
    early_exit: dict[str, Any] | None = None


@dataclass
class TimelineTest:
    test: str
    start: float
    end: float | None
    outcome: str | None


@dataclass
class ProcessTimeline:
    """One process's life, for the timeline view: tests as bars, memory as a line."""

    pid: int
    worker: str | None
    argv: list[str] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    tests: list[TimelineTest] = field(default_factory=list)
    # (time, rss_bytes) pairs, bounded in number by the sampler.
    memory: list[tuple[float, int]] = field(default_factory=list)
    end_reason: str | None = None


@dataclass
class ExpectedDeath:
    """A death that is not an incident: a test's own process, ended as the test meant it to be.

    Counted and listed (folded) so nothing is hidden, and never blamed on anyone.
    """

    pid: int
    argv: str
    reason: str
    test: str | None = None
    signal: str | None = None
    exit_code: int | None = None
    time: float | None = None


@dataclass
class NotCovered:
    """A Python process of the run that the agent could not enter, and why."""

    pid: int
    argv: str
    reason: str


@dataclass
class SignalMark:
    """A captured signal for the timeline: sender -> receiver at time ``t`` (epoch s)."""

    t: float
    signal: str
    receiver_pid: int
    sender_pid: int | None
    label: str
    result: str | None = None


@dataclass
class Source:
    kind: str  # "bundle" | "log"
    paths: list[str] = field(default_factory=list)


@dataclass
class Triage:
    source: Source
    run: Run = field(default_factory=Run)
    incidents: list[Incident] = field(default_factory=list)
    # Extras: per-process timelines, collector notes (what could not be collected and why),
    # signature groups across logs, and the environment facts for upstream reports.
    timelines: list[ProcessTimeline] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signatures: list[dict[str, Any]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    # Deaths the tests caused on purpose (notes, not incidents), and processes without the agent.
    expected_deaths: list[ExpectedDeath] = field(default_factory=list)
    not_covered: list[NotCovered] = field(default_factory=list)
    # Captured kills and interrupts (signals.jsonl), sender -> receiver.
    signals: list[SignalMark] = field(default_factory=list)
    schema: str = TRIAGE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # The contract puts "schema" first; dict order is what json.dumps prints.
        return {"schema": data.pop("schema"), **data}


def _frames(raw: list[dict[str, Any]]) -> list[Frame]:
    return [Frame(**f) for f in raw]


def triage_from_dict(data: dict[str, Any]) -> Triage:
    """Rebuild a :class:`Triage` from its JSON form (used by tools that post-process a triage)."""
    run = dict(data.get("run") or {})
    run["tests"] = TestCounts(**(run.get("tests") or {}))
    incidents = []
    for raw in data.get("incidents") or []:
        inc = dict(raw)
        inc["secondary"] = [Secondary(**s) for s in inc.get("secondary") or []]
        inc["evidence"] = [Evidence(**e) for e in inc.get("evidence") or []]
        inc["stacks"] = [
            Stack(**{**s, "frames": _frames(s.get("frames") or [])})
            for s in inc.get("stacks") or []
        ]
        incidents.append(Incident(**inc))
    timelines = []
    for raw in data.get("timelines") or []:
        tl = dict(raw)
        tl["tests"] = [TimelineTest(**t) for t in tl.get("tests") or []]
        tl["memory"] = [tuple(m) for m in tl.get("memory") or []]
        timelines.append(ProcessTimeline(**tl))
    return Triage(
        source=Source(**data["source"]),
        run=Run(**run),
        incidents=incidents,
        timelines=timelines,
        notes=list(data.get("notes") or []),
        signatures=list(data.get("signatures") or []),
        environment=dict(data.get("environment") or {}),
        expected_deaths=[ExpectedDeath(**d) for d in data.get("expected_deaths") or []],
        not_covered=[NotCovered(**d) for d in data.get("not_covered") or []],
        signals=[SignalMark(**m) for m in data.get("signals") or []],
        schema=data.get("schema", TRIAGE_SCHEMA),
    )
