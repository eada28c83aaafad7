"""The HTML report: one self-contained file that opens offline from a CI artifact.

Incident cards are rendered by the template (autoescaped, readable without JavaScript); the
timelines are drawn on a canvas from one compact JSON block, because 12 workers x 20,000 tests
as DOM or SVG elements would not render in seconds, and the plain triage JSON of such a run is
larger than the 10 MB a report may take.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from forensics.model import Frame, Incident, ProcessTimeline, Triage, is_harness_frame
from forensics.redact import is_redacted
from forensics.render import Considered, differential, early_exit_line
from forensics.render.markdown import memory_facts, ordered_incidents, tail_excerpt
from forensics.render.templates import render_report

# Caps that keep a report of a huge run within 10 MB while showing each crash's end.
EXCERPT_LINES = 300
EXCERPT_CHARS = 48_000
PRIOR_SHOWN = 50
MAX_CARDS = 200
MAX_FRAMES = 60
MAX_STACKS = 8
# What all cards together may take (characters of data; markup roughly doubles a frame).
CARDS_BUDGET = 1_200_000
MEMORY_POINTS = 1500
# Past this, passing tests lose their names (the bars stay): the report must stay <= 10 MB.
TIMELINE_JSON_BUDGET = 8_000_000
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "crashed", "running")

_GITHUB_REF = re.compile(r"^([\w.-]+/[\w.-]+)#(\d+)$")


@dataclass
class FrameView:
    name: str
    where: str
    native: bool
    library: str | None
    responsible: bool
    harness: bool = False


@dataclass
class StackView:
    title: str
    frames: list[FrameView]
    responsible: bool


@dataclass
class IncidentView:
    incident: Incident
    anchor: str
    facts: list[tuple[str, str]]
    memory: list[str]
    evidence: list[tuple[str, str]]
    stacks: list[StackView]
    secondary: list[tuple[str, str, str | None, str | None]]
    prior_shown: list[str]
    prior_hidden: int
    hidden_frames: int = 0
    hidden_stacks: int = 0
    timeline_row: int | None = None
    tags: list[str] = field(default_factory=list)
    # The causes weighed (the incident's own first), for the folded "What else could it be".
    considered: list[Considered] = field(default_factory=list)


def ref_url(ref: str) -> str | None:
    """A link for an upstream reference: owner/repo#N or a plain https URL, nothing else."""
    m = _GITHUB_REF.match(ref)
    if m:
        return f"https://github.com/{m.group(1)}/issues/{m.group(2)}"
    if re.match(r"^https://[^\s\"'<>]+$", ref):
        return ref
    return None


def _library_key(library: str) -> str:
    return os.path.basename(library.split(" ", 1)[0])


def _is_responsible(frame: Frame, native_library: str | None) -> bool:
    if not (frame.native and frame.library and native_library):
        return False
    return _library_key(frame.library) in native_library


def _frame_view(frame: Frame, native_library: str | None) -> FrameView:
    where = f"{frame.file}:{frame.line}" if frame.file and frame.line is not None else frame.file
    return FrameView(
        name=frame.name,
        where=where or "",
        native=frame.native,
        library=frame.library,
        responsible=_is_responsible(frame, native_library),
        harness=is_harness_frame(frame),
    )


@dataclass(frozen=True)
class Caps:
    """Per-card caps: generous for a few incidents, shrinking so hundreds still fit 10 MB."""

    excerpt_chars: int = EXCERPT_CHARS
    frames: int = MAX_FRAMES
    stacks: int = MAX_STACKS
    prior: int = PRIOR_SHOWN

    @classmethod
    def for_cards(cls, n: int) -> Caps:
        share = CARDS_BUDGET // max(1, n)
        return cls(
            excerpt_chars=max(1_000, min(EXCERPT_CHARS, share // 3)),
            frames=max(8, min(MAX_FRAMES, share // 3 // 300)),
            stacks=max(2, min(MAX_STACKS, share // 10_000)),
            prior=max(10, min(PRIOR_SHOWN, share // 3 // 100)),
        )


def incident_view(inc: Incident, caps: Caps | None = None) -> IncidentView:
    facts = [
        (label, str(value))
        for label, value in (
            ("worker", inc.worker),
            ("pid", inc.pid),
            ("signal", inc.signal),
            ("exit code", inc.exit_code),
            ("test", inc.test),
            ("phase", inc.phase),
        )
        if value is not None
    ]
    native = inc.extra.get("native")
    if isinstance(native, dict) and isinstance(native.get("where"), str):
        facts.append(("native frame", native["where"]))
    sender = inc.extra.get("signal_sender")
    if isinstance(sender, dict) and isinstance(sender.get("description"), str):
        facts.append(("sent by", sender["description"]))
    stacks = []
    caps = caps or Caps()
    for stack in inc.stacks[: caps.stacks]:
        frames = [_frame_view(f, inc.native_library) for f in stack.frames[: caps.frames]]
        # A stack read from a log has no pid: say only what is known.
        bits = [f"pid {stack.pid}"] if stack.pid is not None else []
        bits.append(f"thread {stack.thread}")
        bits += [x for x in (stack.method, stack.state) if x]
        stacks.append(StackView(" · ".join(bits), frames, any(f.responsible for f in frames)))
    per_excerpt = caps.excerpt_chars // max(1, min(5, len(inc.evidence)))
    return IncidentView(
        incident=inc,
        anchor=f"incident-{inc.id}",
        facts=facts,
        memory=memory_facts(inc),
        evidence=[
            (ev.source, tail_excerpt(ev.excerpt, EXCERPT_LINES, per_excerpt))
            for ev in inc.evidence[:5]
        ],
        stacks=stacks,
        secondary=[
            (s.cause, s.summary, s.ref, ref_url(s.ref) if s.ref else None) for s in inc.secondary
        ],
        prior_shown=inc.prior_tests[-caps.prior :],
        prior_hidden=max(0, len(inc.prior_tests) - caps.prior),
        hidden_frames=sum(max(0, len(x.frames) - caps.frames) for x in inc.stacks),
        hidden_stacks=max(0, len(inc.stacks) - caps.stacks),
        considered=differential(inc),
    )


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b), 255)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _downsample(points: list[tuple[float, int]], limit: int) -> list[tuple[float, int]]:
    if len(points) <= limit:
        return points
    # Keep the max of each bucket: a memory line must not hide the peak that killed a worker.
    size = len(points) / limit
    out = []
    for b in range(limit):
        bucket = points[int(b * size) : int((b + 1) * size)] or [points[-1]]
        out.append(max(bucket, key=lambda p: p[1]))
    return out


def run_lengths(values: list[int]) -> list[int]:
    """[value, count, value, count...]: a worker runs one module's tests, mostly passing."""
    out: list[int] = []
    for v in values:
        if out and out[-2] == v:
            out[-1] += 1
        else:
            out += [v, 1]
    return out


def _row(
    tl: ProcessTimeline, t0: float, modules: dict[str, int], outcome_codes: dict[str, int]
) -> dict[str, Any]:
    def ms(t: float) -> int:
        return round((t - t0) * 1000)

    starts, durations, outcomes, mods, prefixes, names = [], [], [], [], [], []
    previous_start = 0
    previous_name = ""
    for test in sorted(tl.tests, key=lambda x: x.start):
        module, _, name = test.test.rpartition("::")
        start = ms(test.start)
        starts.append(start - previous_start)
        previous_start = start
        durations.append(-1 if test.end is None else max(0, ms(test.end) - start))
        outcome = test.outcome or "running"
        outcomes.append(outcome_codes.setdefault(outcome, len(outcome_codes)))
        mods.append(modules.setdefault(module, len(modules)))
        # Front coding: consecutive tests of a worker share most of their name.
        k = _common_prefix(previous_name, name)
        prefixes.append(k)
        names.append(name[k:])
        previous_name = name
    return {
        "label": f"{tl.worker or 'process'} · pid {tl.pid}",
        "worker": tl.worker,
        "pid": tl.pid,
        "start": None if tl.start is None else ms(tl.start),
        "end": None if tl.end is None else ms(tl.end),
        "end_reason": tl.end_reason,
        "s": starts,
        "d": durations,
        "o": run_lengths(outcomes),
        "m": run_lengths(mods),
        "p": prefixes,
        "n": names,
        "mem": [[ms(t), rss] for t, rss in _downsample(tl.memory, MEMORY_POINTS)],
        "blame": [],
    }


_MARK_KIND = {
    "native-crash": "crash",
    "oom-kill": "oom",
    "external-kill": "kill",
    "unexpected-exit": "exit",
    "hang": "hang",
}


def _fit_names(rows: list[dict[str, Any]]) -> None:
    if len(json.dumps(rows, separators=(",", ":"))) <= TIMELINE_JSON_BUDGET:
        return
    for r in rows:
        full: list[str] = []
        previous = ""
        for k, suffix in zip(r["p"], r["n"], strict=True):
            previous = previous[:k] + suffix
            full.append(previous)
        # Blamed tests keep their names; the others are bars with a position and an outcome.
        r["named"] = {str(i): full[i] for i in r["blame"]}
        r["p"], r["n"] = [], []


def timeline_data(triage: Triage, views: list[IncidentView]) -> dict[str, Any]:
    """The compact form the timeline script draws from (starts and durations in ms)."""
    timelines = triage.timelines
    starts = [t.start for tl in timelines for t in tl.tests[:1]] + [
        tl.start for tl in timelines if tl.start is not None
    ]
    t0 = triage.run.start if triage.run.start is not None else min(starts, default=0.0)
    modules: dict[str, int] = {}
    outcome_codes = {o: i for i, o in enumerate(OUTCOMES)}
    rows = [_row(tl, t0, modules, outcome_codes) for tl in timelines]
    marks = []
    for view in views:
        inc = view.incident
        row = next(
            (i for i, tl in enumerate(timelines) if inc.pid is not None and tl.pid == inc.pid),
            None,
        )
        if row is None and inc.worker:
            row = next((i for i, tl in enumerate(timelines) if tl.worker == inc.worker), None)
        if row is None:
            continue
        view.timeline_row = row
        tl = timelines[row]
        if inc.test:
            # Only tests named by an incident are drawn as blamed.
            ordered = sorted(tl.tests, key=lambda x: x.start)
            rows[row]["blame"] += [i for i, t in enumerate(ordered) if t.test == inc.test]
        at = inc.time if inc.time is not None else tl.end
        if at is None and tl.tests:
            last = max(tl.tests, key=lambda x: x.start)
            at = last.end or last.start
        marks.append(
            {
                "row": row,
                "at": None if at is None else round((at - t0) * 1000),
                "kind": _MARK_KIND.get(inc.cause, "other"),
                "label": f"{inc.id} {inc.signal or inc.cause}",
                "anchor": view.anchor,
            }
        )
    _fit_names(rows)
    row_of = {tl.pid: i for i, tl in enumerate(timelines)}
    signals = [
        {
            "at": round((m.t - t0) * 1000),
            "from": row_of.get(m.sender_pid) if m.sender_pid is not None else None,
            "to": row_of[m.receiver_pid],
            "signal": m.signal,
            "label": m.label,
        }
        for m in triage.signals
        if m.receiver_pid in row_of
    ]
    ends = [r["end"] for r in rows if r["end"] is not None]
    for r in rows:
        if r["s"]:
            last = sum(r["s"]) + max(0, r["d"][-1])
            ends.append(last)
    return {
        "t1": max(ends, default=0),
        "duration_ms": None if triage.run.duration_s is None else triage.run.duration_s * 1000,
        "outcomes": list(outcome_codes),
        "modules": list(modules),
        "rows": rows,
        "marks": marks,
        "signals": signals,
    }


def report_context(triage: Triage) -> dict[str, Any]:
    ordered = ordered_incidents(triage)
    caps = Caps.for_cards(min(len(ordered), MAX_CARDS))
    views = [incident_view(inc, caps) for inc in ordered[:MAX_CARDS]]
    return {
        "triage": triage,
        "run": triage.run,
        "redacted": is_redacted(triage),
        "views": views,
        "hidden_cards": max(0, len(ordered) - MAX_CARDS),
        "causes": Counter(inc.cause for inc in ordered).most_common(),
        "early_exit": early_exit_line(triage.run.early_exit) if triage.run.early_exit else None,
        "timeline": timeline_data(triage, views),
        "environment": {
            k: v for k, v in triage.environment.items() if k != "redacted" and v is not None
        },
    }


def render_html(triage: Triage) -> str:
    return render_report("report", **report_context(triage))
