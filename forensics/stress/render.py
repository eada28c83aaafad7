"""The per-level table (like seed 001's hand-made one) as JSON, text, Markdown and HTML.

JSON data is built first; the other views are drawn from the same :class:`StressReport`.
"""

from __future__ import annotations

import html
import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.stress.history import LevelRow, LimitsRow, SignatureGroup

STRESS_SCHEMA = "forensics.stress/1"
FORMATS = ("text", "json", "markdown", "html")


@dataclass
class StressReport:
    command: str
    cwd: str
    history: str
    sessions: int
    session: str
    # This session alone: how many iterations ran, and why it stopped early (if it did).
    ran: int
    stopped: str | None
    levels: list[LevelRow] = field(default_factory=list)
    # Each signature across the levels, and the wrap limits the iterations ran with.
    groups: list[SignatureGroup] = field(default_factory=list)
    limits: list[LimitsRow] = field(default_factory=list)

    def next_commands(self, limit: int = 8) -> list[str]:
        """What to type next, for the newest bundle of each signature that still exists."""
        reported: set[str] = set()
        out: list[str] = []
        for level in self.levels:
            for sig in level.signatures:
                if sig.bundle is None or not Path(sig.bundle).is_dir():
                    continue
                bundle = shlex.quote(sig.bundle)
                if sig.bundle not in reported:
                    reported.add(sig.bundle)
                    out.append(f"forensics report {bundle} --format text")
                if sig.bisectable and sig.incident:
                    out.append(f"forensics bisect {bundle} --incident {sig.incident}")
        return out[:limit]


def level_name(parallel: int) -> str:
    return "serial (-n 0)" if parallel == 0 else f"-n {parallel}"


def _rate(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def hung_cell(lv: LevelRow) -> str:
    """``3 (teardown 2, call 1)``: a teardown hang is a different bug from a call hang."""
    if not lv.hung:
        return "0"
    return f"{lv.hung} (" + ", ".join(f"{p} {n}" for p, n in lv.hangs_by_phase.items()) + ")"


def limits_line(report: StressReport) -> str:
    parts = [
        f"{row.iterations} with `forensics wrap {' '.join(row.limits.wrap_args())}`"
        for row in report.limits
    ]
    return "Iterations run: " + "; ".join(parts) if parts else ""


def _signature_dict(g: SignatureGroup) -> dict[str, Any]:
    return {
        "signature": g.signature,
        "cause": g.cause,
        "phase": g.phase,
        "counts": {str(level): n for level, n in sorted(g.counts.items())},
        "sample": g.sample,
        "first_bundle": g.first_bundle,
        "first_incident": g.first_incident,
    }


def to_dict(report: StressReport) -> dict[str, Any]:
    return {
        "schema": STRESS_SCHEMA,
        "command": report.command,
        "cwd": report.cwd,
        "history": report.history,
        "sessions": report.sessions,
        "session": report.session,
        "ran": report.ran,
        "stopped": report.stopped,
        "limits": [
            {
                "hang_timeout": row.limits.hang_timeout,
                "timeout": row.limits.timeout,
                "interrupt_grace": row.limits.interrupt_grace,
                "iterations": row.iterations,
            }
            for row in report.limits
        ],
        "levels": [
            {
                "parallel": lv.parallel,
                "iterations": lv.iterations,
                "passed": lv.passed,
                "failed": lv.failed,
                "mean_duration_s": round(lv.mean_duration_s, 3),
                "crashed": lv.crashed,
                "hung": lv.hung,
                "hangs_by_phase": lv.hangs_by_phase,
                "by_cause": lv.by_cause,
                "signatures": [
                    {
                        "signature": s.signature,
                        "cause": s.cause,
                        "phase": s.phase,
                        "count": s.count,
                        "sample": s.sample,
                        "bundle": s.bundle,
                    }
                    for s in lv.signatures
                ],
            }
            for lv in report.levels
        ],
        "signatures": [_signature_dict(g) for g in report.groups],
        "next": report.next_commands(),
    }


def text_lines(report: StressReport) -> Iterator[str]:
    yield f"forensics stress: {report.command}"
    yield (
        f"  in {report.cwd}; history {report.history} ({report.sessions} session(s)); "
        f"this session ran {report.ran} iteration(s)"
        + (f", stopped: {report.stopped}" if report.stopped else "")
    )
    if report.limits:
        yield "  " + limits_line(report).replace("`", "")
    yield ""
    yield (
        f"{'level':<15} {'iterations':>10} {'passed':>7} {'failed':>7} {'crashed':>7} "
        f"{'pass rate':>9} {'mean':>7}  hung"
    )
    for lv in report.levels:
        yield (
            f"{level_name(lv.parallel):<15} {lv.iterations:>10} {lv.passed:>7} {lv.failed:>7} "
            f"{lv.crashed:>7} {_rate(lv.passed, lv.iterations):>9} {lv.mean_duration_s:>6.1f}s  "
            f"{hung_cell(lv)}"
        )
    for lv in report.levels:
        if not lv.signatures:
            continue
        yield ""
        causes = ", ".join(f"{n} {c}" for c, n in lv.by_cause.items())
        yield f"{level_name(lv.parallel)}: failed in {lv.failed} of {lv.iterations} ({causes})"
        for sig in lv.signatures:
            share = _rate(sig.count, lv.iterations)
            cause = sig.cause + (f" in {sig.phase}" if sig.phase else "")
            yield f"  {sig.count:>4} {share:>4}  [{cause}] {sig.signature}"
    commands = report.next_commands()
    if commands:
        yield ""
        yield "next:"
        yield from (f"  {c}" for c in commands)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'").replace("\n", " ")


def markdown_lines(report: StressReport) -> Iterator[str]:
    """Seed 001's pass-rate table, then one line per signature with its count at each level."""
    yield f"### Stress results: `{_md(report.command)}`"
    yield ""
    if report.limits:
        yield limits_line(report)
        yield ""
    yield "| Parallelism | Iterations | Passed | Failed | Crashed | Hung | Pass Rate |"
    yield "|-------------|-----------:|-------:|-------:|--------:|-----:|----------:|"
    for lv in report.levels:
        yield (
            f"| {level_name(lv.parallel)} | {lv.iterations} | {lv.passed} | {lv.failed} | "
            f"{lv.crashed} | {hung_cell(lv)} | **{_rate(lv.passed, lv.iterations)}** |"
        )
    yield ""
    if not report.groups:
        yield "No failures."
        return
    levels = [lv.parallel for lv in report.levels]
    totals = {lv.parallel: lv.iterations for lv in report.levels}
    yield "#### Failure signatures"
    yield ""
    yield (
        "| Cause | Phase | Signature | "
        + " | ".join(level_name(p) for p in levels)
        + " | First bundle | Sample Message |"
    )
    yield "|-------|-------|-----------|" + "----:|" * len(levels) + "---|---|"
    for g in report.groups:
        counts = " | ".join(f"{g.counts.get(p, 0)}/{totals[p]}" for p in levels)
        bundle = f"`{_md(g.first_bundle)}`" if g.first_bundle else "-"
        yield (
            f"| {g.cause} | {g.phase or '-'} | `{_md(g.signature)}` | {counts} | {bundle} | "
            f"`{_md(g.sample)}` |"
        )


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}"
    "td.n{text-align:right}code{font-size:90%}"
)


def render_html(report: StressReport) -> str:
    e = html.escape
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        f"<title>forensics stress: {e(report.command)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Stress results</h1><p><code>{e(report.command)}</code> in <code>{e(report.cwd)}"
        f"</code>, {report.sessions} session(s)</p>",
        f"<p>{e(limits_line(report).replace('`', ''))}</p>",
        "<table><tr><th>Parallelism</th><th>Iterations</th><th>Passed</th><th>Failed</th>"
        "<th>Crashed</th><th>Hung</th><th>Pass rate</th><th>Mean time</th></tr>",
    ]
    for lv in report.levels:
        parts.append(
            f"<tr><td>{e(level_name(lv.parallel))}</td><td class=n>{lv.iterations}</td>"
            f"<td class=n>{lv.passed}</td><td class=n>{lv.failed}</td>"
            f"<td class=n>{lv.crashed}</td><td>{e(hung_cell(lv))}</td>"
            f"<td class=n>{_rate(lv.passed, lv.iterations)}</td>"
            f"<td class=n>{lv.mean_duration_s:.1f}s</td></tr>"
        )
    parts.append("</table>")
    for lv in report.levels:
        if not lv.signatures:
            continue
        parts.append(
            f"<h2>{e(level_name(lv.parallel))}</h2><table><tr><th>Cause</th><th>Phase</th>"
            "<th>Signature</th><th>Count</th><th>%</th><th>Sample message</th></tr>"
        )
        for sig in lv.signatures:
            parts.append(
                f"<tr><td>{e(sig.cause)}</td><td>{e(sig.phase or '-')}</td>"
                f"<td><code>{e(sig.signature)}</code></td>"
                f"<td class=n>{sig.count}</td><td class=n>{_rate(sig.count, lv.iterations)}</td>"
                f"<td><code>{e(sig.sample)}</code></td></tr>"
            )
        parts.append("</table>")
    commands = report.next_commands()
    if commands:
        parts.append("<h2>Next</h2><pre>" + e("\n".join(commands)) + "</pre>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render(report: StressReport, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(report), indent=2) + "\n"
    if fmt == "html":
        return render_html(report)
    lines = markdown_lines(report) if fmt == "markdown" else text_lines(report)
    return "\n".join(lines) + "\n"
