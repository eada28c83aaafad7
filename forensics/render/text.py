"""The terminal summary, as a generator of lines so tests assert lines, not files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from forensics.model import Incident, Triage
from forensics.render import differential, early_exit_line, expected_death_line, incident_facts


def incident_line(incident: Incident) -> str:
    cause = f"[{incident.cause}]"
    extra = (
        f" (also: {', '.join(s.cause for s in incident.secondary)})" if incident.secondary else ""
    )
    return f"{incident.id} {cause:<19} {incident.summary}{extra}"


def _frame_line(name: str, file: str | None, line: int | None, native: bool) -> str:
    where = f"{file}:{line}" if file and line is not None else (file or "")
    mark = "native " if native else ""
    return f"      {mark}{name}  {where}".rstrip()


def text_lines(triage: Triage, max_frames: int = 12) -> Iterator[str]:
    run = triage.run
    tests = run.tests
    yield f"forensics triage of {', '.join(triage.source.paths)}"
    if run.command:
        yield f"  command:   {' '.join(run.command)}"
    status = "unknown" if run.exit_code is None else str(run.exit_code)
    duration = "?" if run.duration_s is None else f"{run.duration_s:.1f}s"
    yield f"  exit:      {status}   duration: {duration}"
    yield (
        f"  tests:     {tests.passed} passed, {tests.failed} failed, {tests.error} error, "
        f"{tests.skipped} skipped"
    )
    if run.early_exit:
        yield f"  stopped:   {early_exit_line(run.early_exit)}"
        for line in str(run.early_exit.get("error") or "").splitlines()[:8]:
            yield f"             {line}"
    causes = Counter(i.cause for i in triage.incidents)
    yield "  incidents: " + (", ".join(f"{n} {c}" for c, n in causes.most_common()) or "none")
    for incident in triage.incidents:
        yield ""
        yield incident_line(incident)
        yield f"    confidence: {incident.confidence}"
        shown = "  ".join(f"{k}={v}" for k, v in incident_facts(incident))
        if shown:
            yield f"    {shown}"
        if incident.test:
            yield f"    test: {incident.test}"
        rows = differential(incident)
        if rows:
            yield "    considered (* the cause; + for, - against):"
        for row in rows:
            mark = "*" if row.cause == incident.cause else " "
            reasons = [f"+ {x}" for x in row.for_] + [f"- {x}" for x in row.against]
            yield f"    {mark} {row.cause} ({row.verdict}): " + ("; ".join(reasons) or "-")
        if incident.prior_tests:
            tail = incident.prior_tests[-5:]
            more = len(incident.prior_tests) - len(tail)
            yield f"    prior tests on this process ({len(incident.prior_tests)}):" + (
                f" ...{more} earlier" if more else ""
            )
            for nodeid in tail:
                yield f"      {nodeid}"
        for sec in incident.secondary:
            ref = f" [{sec.ref}]" if sec.ref else ""
            yield f"    secondary {sec.cause}: {sec.summary}{ref}"
        # Every thread: the one left out is the one stuck in Queue.get.
        for stack in incident.stacks:
            method = f" via {stack.method}" if stack.method else ""
            state = f" [{stack.state}]" if stack.state else ""
            yield f"    stack pid {stack.pid} thread {stack.thread}{state}{method}:"
            for frame in stack.frames[:max_frames]:
                yield _frame_line(frame.name, frame.file, frame.line, frame.native)
            if len(stack.frames) > max_frames:
                yield f"      ... {len(stack.frames) - max_frames} more frames"
        if incident.repro:
            yield f"    repro: {incident.repro}"
    for note in triage.notes:
        yield f"note: {note}"
    if triage.expected_deaths:
        yield ""
        yield f"expected deaths ({len(triage.expected_deaths)}), not incidents:"
        for death in triage.expected_deaths:
            yield f"  {expected_death_line(death)}"
    if triage.not_covered:
        yield ""
        yield f"not covered by the agent ({len(triage.not_covered)}):"
        for proc in triage.not_covered:
            yield f"  pid {proc.pid} ({proc.argv}): {proc.reason}"


def render_text(triage: Triage) -> str:
    return "\n".join(text_lines(triage)) + "\n"
