"""Markdown for an upstream issue: a GitHub issue body, however big the run.

Built as sections of lines (a generator per section, so tests assert lines).  When the whole does
not fit the limit (GitHub rejects bodies over 65,536 characters), the least important sections go
first and the body says what was cut; each excerpt is already capped, keeping its end, since a
crash is at the end of what a process printed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from forensics.model import Incident, Stack, Triage
from forensics.redact import is_redacted
from forensics.render import early_exit_line, expected_death_line, incident_facts, why_not

GITHUB_BODY_LIMIT = 65536
# Per-item caps: big enough to show a crash, small enough that many incidents still fit.
EXCERPT_LINES = 40
EXCERPT_CHARS = 4000
STACK_FRAMES = 25
PRIOR_TESTS = 10
MAX_COMMAND = 2000
MAX_LISTED = 30

# Which incident an upstream issue is about: the cause a maintainer can act on comes first.
CAUSE_RANK = {
    c: i
    for i, c in enumerate(
        (
            "native-crash",
            "oom-kill",
            "hang",
            "unexpected-exit",
            "xdist-internal",
            "python-exception",
            "external-kill",
            "infrastructure",
            "unknown",
        )
    )
}
_CONFIDENCE_RANK = {"high": 0, "medium": 1, "low": 2}

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~])")
# Upstream references GitHub links by itself: owner/repo#123 or a plain https URL.
_REF = re.compile(r"^(?:[\w.-]+/[\w.-]+#\d+|https://[^\s<>()\[\]`]+)$")


def ref_text(ref: str) -> str:
    return ref if _REF.match(ref) else md_escape(ref)


def md_escape(text: str) -> str:
    """Inline text that GitHub shows verbatim: no emphasis, links or raw HTML from data."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " ")).replace("&", "&amp;")


def code(text: str) -> str:
    """An inline code span that survives backticks inside ``text``."""
    text = text.replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(text: str, lang: str = "") -> Iterator[str]:
    """A fenced block whose fence is longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    yield fence + lang
    yield from text.splitlines() or [""]
    yield fence


def tail_excerpt(text: str, lines: int = EXCERPT_LINES, chars: int = EXCERPT_CHARS) -> str:
    """The end of ``text`` within the caps, saying how much was left out."""
    kept = text.splitlines()
    cut_lines = max(0, len(kept) - lines)
    body = "\n".join(kept[cut_lines:])
    cut_chars = 0
    if len(body) > chars:
        cut_chars = len(body) - chars
        body = body[-chars:]
    if cut_lines or cut_chars:
        dropped = cut_chars + _len(kept[:cut_lines])
        return f"[... {dropped} earlier characters ({cut_lines}+ lines) cut]\n{body}"
    return body


def _len(lines: list[str]) -> int:
    return sum(len(x) + 1 for x in lines)


def ordered_incidents(triage: Triage) -> list[Incident]:
    """Incidents by importance: actionable cause first, then confidence, then as found."""
    return sorted(
        triage.incidents,
        key=lambda i: (CAUSE_RANK.get(i.cause, 99), _CONFIDENCE_RANK.get(i.confidence, 9)),
    )


def title_suggestion(triage: Triage) -> str:
    incidents = ordered_incidents(triage)
    if not incidents:
        return "Test run failed without a recorded incident"
    inc = incidents[0]
    what = {
        "native-crash": f"{inc.signal or 'Fatal signal'} in native code",
        "oom-kill": "Worker killed by the OOM killer",
        "hang": "Hang",
        "unexpected-exit": f"Process exited mid-test (exit {inc.exit_code})",
        "xdist-internal": "pytest-xdist INTERNALERROR",
        "python-exception": "Exception",
        "external-kill": f"Worker killed by {inc.signal or 'a signal'}",
        "infrastructure": "Infrastructure failure",
    }.get(inc.cause, "Unexplained failure")
    parts = [what]
    if inc.native_library:
        parts.append(f"in {inc.native_library}")
    if inc.test:
        parts.append(f"during {inc.test.rsplit('::', 1)[-1]}")
    if inc.worker:
        parts.append("under pytest-xdist")
    return " ".join(parts)


def frame_text(stack: Stack, max_frames: int = STACK_FRAMES) -> str:
    method = f" ({stack.method})" if stack.method else ""
    pid = f"pid {stack.pid} " if stack.pid is not None else ""
    lines = [f"{pid}thread {stack.thread}{method}"]
    for frame in stack.frames[:max_frames]:
        where = (
            f"{frame.file}:{frame.line}" if frame.file and frame.line is not None else frame.file
        )
        if frame.native:
            lib = f" [{frame.library}]" if frame.library else ""
            lines.append(f"  native  {frame.name}{lib}" + (f"  {where}" if where else ""))
        else:
            lines.append(f"  {frame.name}" + (f"  {where}" if where else ""))
    if len(stack.frames) > max_frames:
        lines.append(f"  ... {len(stack.frames) - max_frames} more frames")
    return "\n".join(lines)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def memory_facts(inc: Incident) -> list[str]:
    """The OOM evidence a reader needs: how close to the limit, and which tests grew memory."""
    memory = inc.memory
    if not isinstance(memory, dict):
        return []
    facts = []
    peak, limit = memory.get("peak_rss_bytes"), memory.get("limit_bytes")
    if isinstance(peak, (int, float)):
        of = f" of a {human_bytes(limit)} limit" if isinstance(limit, (int, float)) else ""
        facts.append(f"peak RSS {human_bytes(peak)}{of}")
    growth = [g for g in memory.get("top_growth") or [] if isinstance(g, dict)]
    if growth:
        shown = ", ".join(
            f"{g.get('test')} +{human_bytes(float(g.get('rss_delta_bytes') or 0))}"
            for g in growth[:3]
        )
        facts.append(f"largest memory growth: {shown}")
    return facts


@dataclass
class Section:
    name: str
    # Lower is more important; the highest ranks are cut first when the body is too long.
    rank: int
    lines: list[str]

    def size(self) -> int:
        return _len(self.lines)


def _header(triage: Triage) -> Iterator[str]:
    yield f"**Suggested title:** {md_escape(title_suggestion(triage))}"
    yield ""
    if not is_redacted(triage):
        yield "> [!WARNING]"
        yield "> NOT REDACTED: this report was made with `--no-redact` and may contain secrets."
        yield ""


def _environment(triage: Triage) -> Iterator[str]:
    env = triage.environment
    host = triage.run.host
    yield "### Environment"
    yield ""
    facts: list[tuple[str, object]] = []
    for key in ("python", "implementation", "os", "platform", "libc", "cpu_count", "ci"):
        value = env.get(key, host.get(key))
        if value is not None and not isinstance(value, (dict, list)):
            facts.append((key, value))
    for key, value in facts:
        yield f"- {md_escape(key)}: {code(str(value))}"
    packages = env.get("packages")
    if isinstance(packages, dict) and packages:
        yield ""
        yield "| package | version |"
        yield "| --- | --- |"
        for name, version in sorted(packages.items()):
            yield f"| {md_escape(str(name))} | {md_escape(str(version))} |"
    if not facts and not packages:
        yield "- not recorded"
    yield ""


def _what_happened(triage: Triage, incidents: list[Incident]) -> Iterator[str]:
    run = triage.run
    yield "### What happened"
    yield ""
    if run.command:
        command = " ".join(run.command)
        if len(command) > MAX_COMMAND:
            command = command[:MAX_COMMAND] + f" ... [{len(command) - MAX_COMMAND} characters cut]"
        yield f"- command: {code(command)}"
    status = "unknown" if run.exit_code is None else str(run.exit_code)
    duration = "unknown" if run.duration_s is None else f"{run.duration_s:.1f} s"
    yield f"- exit status: {status}, duration: {duration}"
    t = run.tests
    yield f"- tests: {t.passed} passed, {t.failed} failed, {t.error} error, {t.skipped} skipped"
    if run.early_exit:
        yield f"- **{md_escape(early_exit_line(run.early_exit))}**"
        error = str(run.early_exit.get("error") or "")
        if error:
            yield ""
            yield from fenced(tail_excerpt(error))
            yield ""
    causes = Counter(i.cause for i in incidents)
    yield "- incidents: " + (", ".join(f"{n} {c}" for c, n in causes.most_common()) or "none")
    yield ""
    for inc in incidents[:MAX_LISTED]:
        head = f"**{md_escape(inc.id)} {md_escape(inc.cause)}** ({md_escape(inc.confidence)})"
        yield f"- {head}: {md_escape(inc.summary[:MAX_COMMAND])}"
        shown = ", ".join(f"{k} {code(str(v))}" for k, v in incident_facts(inc))
        if shown:
            yield f"  - {shown}"
        if inc.test:
            yield f"  - test: {code(inc.test)}"
        for fact in memory_facts(inc):
            yield f"  - {md_escape(fact)}"
        for sec in inc.secondary:
            ref = f" (see {ref_text(sec.ref)})" if sec.ref else ""
            yield f"  - then {md_escape(sec.cause)}: {md_escape(sec.summary[:MAX_COMMAND])}{ref}"
    if len(incidents) > MAX_LISTED:
        yield f"- ... and {len(incidents) - MAX_LISTED} more incidents in the full report"
    yield ""


def _why_not(inc: Incident) -> Iterator[str]:
    rows = why_not(inc)
    if not rows:
        return
    yield f"### Why not something else ({md_escape(inc.id)}: {md_escape(inc.cause)})"
    yield ""
    for row in rows:
        # The reasons against answer "why not"; a cause left open says what speaks for it too.
        reasons = row.against + (row.for_ if row.verdict != "ruled out" else [])
        because = "; ".join(md_escape(r[:MAX_COMMAND]) for r in reasons) or "no evidence either way"
        yield f"- **{md_escape(row.cause)}**: {md_escape(row.verdict)} - {because}"
    yield ""


def _excerpt(inc: Incident) -> Iterator[str]:
    if not inc.evidence:
        return
    yield f"### Crash excerpt ({md_escape(inc.id)})"
    yield ""
    for ev in inc.evidence[:3]:
        yield f"From {code(ev.source)}:"
        yield ""
        yield from fenced(tail_excerpt(ev.excerpt))
        yield ""
    if len(inc.evidence) > 3:
        yield f"_{len(inc.evidence) - 3} more pieces of evidence in the full report._"
        yield ""


def _stacks(inc: Incident, start: int, stop: int) -> Iterator[str]:
    if len(inc.stacks) <= start:
        return
    if start == 0:
        yield f"### Stacks ({md_escape(inc.id)})"
        yield ""
    for stack in inc.stacks[start:stop]:
        yield from fenced(frame_text(stack))
        yield ""
    if stop > 1 and len(inc.stacks) > stop:
        yield f"_{len(inc.stacks) - stop} more stacks in the full report._"
        yield ""


def _prior(inc: Incident) -> Iterator[str]:
    if not inc.prior_tests:
        return
    shown = inc.prior_tests[-PRIOR_TESTS:]
    count = len(inc.prior_tests)
    yield f"<details><summary>{count} earlier tests in the same process ({md_escape(inc.id)})"
    yield "</summary>"
    yield ""
    if len(inc.prior_tests) > len(shown):
        yield f"... {len(inc.prior_tests) - len(shown)} earlier"
    yield from fenced("\n".join(shown))
    yield ""
    yield "</details>"
    yield ""


def _expected(triage: Triage) -> Iterator[str]:
    """Deaths the tests caused, and processes without the agent: folded, counted, never hidden."""
    for title, lines in (
        (
            f"{len(triage.expected_deaths)} expected process deaths (not incidents)",
            [expected_death_line(d) for d in triage.expected_deaths],
        ),
        (
            f"{len(triage.not_covered)} Python processes without the agent",
            [f"pid {p.pid} ({p.argv}): {p.reason}" for p in triage.not_covered],
        ),
    ):
        if not lines:
            continue
        yield f"<details><summary>{md_escape(title)}</summary>"
        yield ""
        yield from fenced("\n".join(lines[:200]))
        if len(lines) > 200:
            yield f"... {len(lines) - 200} more in the full report"
        yield ""
        yield "</details>"
        yield ""


def _repro(incidents: list[Incident]) -> Iterator[str]:
    commands = list(dict.fromkeys(i.repro for i in incidents if i.repro))
    if not commands:
        return
    yield "### Reproduce"
    yield ""
    yield from fenced("\n".join(commands[:5]), "sh")
    yield ""


def sections(triage: Triage) -> list[Section]:
    incidents = ordered_incidents(triage)
    out = [
        Section("header", 0, list(_header(triage))),
        Section("what happened", 1, list(_what_happened(triage, incidents))),
        Section("environment", 2, list(_environment(triage))),
        Section("reproduce", 2, list(_repro(incidents))),
    ]
    for n, inc in enumerate(incidents):
        # The first incident's excerpt and top stack matter most; later incidents' least.
        out.append(Section(f"why not something else for {inc.id}", 3 + 3 * n, list(_why_not(inc))))
        out.append(Section(f"crash excerpt of {inc.id}", 3 + 3 * n, list(_excerpt(inc))))
        out.append(Section(f"top stack of {inc.id}", 4 + 3 * n, list(_stacks(inc, 0, 1))))
        out.append(Section(f"more stacks of {inc.id}", 50 + n, list(_stacks(inc, 1, 4))))
        out.append(Section(f"prior tests of {inc.id}", 60 + n, list(_prior(inc))))
    notes = [f"- {md_escape(n)}" for n in triage.notes]
    if notes:
        out.append(Section("collector notes", 90, ["### Notes", "", *notes, ""]))
    out.append(Section("expected deaths", 95, list(_expected(triage))))
    out.append(Section("footer", 0, ["_Made with forensics (crash forensics for pytest-xdist)._"]))
    return [s for s in out if s.lines]


def fit(parts: list[Section], limit: int) -> Iterator[str]:
    """The sections in order, without the least important ones while the whole is too long."""
    kept = list(parts)
    cut: list[str] = []
    budget = limit - 400  # room for the note that says what was cut
    while sum(s.size() for s in kept) > budget:
        victim = max((s for s in kept if s.rank > 0), key=lambda s: s.rank, default=None)
        if victim is None:
            break
        kept.remove(victim)
        cut.append(victim.name)
    for section in kept:
        if section.name == "footer" and cut:
            shown = ", ".join(cut[:8]) + (f" and {len(cut) - 8} more" if len(cut) > 8 else "")
            yield f"_Cut to fit a GitHub issue: {md_escape(shown)}. The full report has them._"
            yield ""
        yield from section.lines


def markdown_lines(triage: Triage, limit: int = GITHUB_BODY_LIMIT) -> Iterator[str]:
    yield from fit(sections(triage), limit)


def _hard_cap(lines: Iterable[str], limit: int) -> str:
    text = "\n".join(lines) + "\n"
    if len(text) <= limit:
        return text
    # Only reachable when the must-keep sections alone are too long (a huge command line).
    note = "\n\n_[truncated to fit a GitHub issue]_\n"
    return text[: limit - len(note)] + note


def render_markdown(triage: Triage, limit: int = GITHUB_BODY_LIMIT) -> str:
    return _hard_cap(markdown_lines(triage, limit), limit)
