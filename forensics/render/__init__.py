"""Views of a triage.

Renderers know only :mod:`forensics.model`, never where the evidence came from.
"""

from __future__ import annotations

import json

from forensics.model import Triage

FORMATS = ("text", "json", "markdown", "html")


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
