"""Views of a triage.

Renderers know only :mod:`forensics.model`, never where the evidence came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from forensics.model import ExpectedDeath, Incident, Triage

FORMATS = ("text", "json", "markdown", "html")


def incident_facts(incident: Incident) -> list[tuple[str, object]]:
    """The short facts every view shows under an incident's summary, those that are known."""
    facts = [
        ("worker", incident.worker),
        ("pid", incident.pid),
        ("signal", incident.signal),
        ("exit", incident.exit_code),
        ("phase", incident.phase),
        ("library", incident.native_library),
    ]
    return [(label, value) for label, value in facts if value is not None]


@dataclass
class Considered:
    """One row of an incident's differential (``extra["differential"]``), as views draw it."""

    cause: str
    verdict: str
    for_: list[str]
    against: list[str]


def differential(incident: Incident) -> list[Considered]:
    """The causes weighed for *incident*, most likely first; [] when it has none.

    A triage read back from JSON may carry anything in ``extra``: rows that are not what the
    analyzer writes are skipped.
    """
    rows = incident.extra.get("differential")
    if not isinstance(rows, list):
        return []
    found = []
    for row in rows[:12]:
        if not isinstance(row, dict):
            continue
        cause, verdict = row.get("cause"), row.get("verdict")
        if not isinstance(cause, str) or not isinstance(verdict, str):
            continue
        found.append(
            Considered(
                cause,
                verdict,
                [str(x) for x in row.get("for") or [] if isinstance(x, str)][:6],
                [str(x) for x in row.get("against") or [] if isinstance(x, str)][:6],
            )
        )
    return found


def why_not(incident: Incident) -> list[Considered]:
    """The other causes weighed: what a maintainer asks first ("why not OOM?")."""
    return [row for row in differential(incident) if row.cause != incident.cause]


def early_exit_line(early: dict[str, object]) -> str:
    stage = "before collecting any test" if early.get("stage") == "startup" else "in collection"
    return f"the command exited with status {early.get('exit_code')} {stage}; no test ran"


def expected_death_line(death: ExpectedDeath) -> str:
    how = death.signal or (f"exit {death.exit_code}" if death.exit_code is not None else "?")
    return f"pid {death.pid} ({death.argv}) {how}: {death.reason}"


def render_json(triage: Triage) -> str:
    return json.dumps(triage.to_dict(), indent=2, default=str) + "\n"


def render(triage: Triage, fmt: str) -> str:
    if fmt == "json":
        return render_json(triage)
    if fmt == "text":
        from forensics.render.text import render_text

        return render_text(triage)
    if fmt == "markdown":
        from forensics.render.markdown import render_markdown

        return render_markdown(triage)
    if fmt == "html":
        from forensics.render.html import render_html

        return render_html(triage)
    raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
