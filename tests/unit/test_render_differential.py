"""The differential in every view: text lines, the Markdown "Why not" list, the folded HTML
section; markup in its reasons stays text."""

from __future__ import annotations

from pathlib import Path

from test_render_html import _parse

from forensics.analyze.logs import analyze_logs
from forensics.model import Incident, Source, Triage
from forensics.render.html import render_html
from forensics.render.markdown import markdown_lines
from forensics.render.text import text_lines

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
EVIL = "<img src=x onerror=alert(3)>"


def _triage() -> Triage:
    return analyze_logs([str(LOGS / "real_timeout_thread_v_gha.log")])


def test_text_marks_the_cause_and_lists_reasons_for_and_against() -> None:
    lines = list(text_lines(_triage()))
    assert "    considered (* the cause; + for, - against):" in lines
    hang = next(line for line in lines if line.startswith("    * hang (most likely): "))
    assert "+ the worker printed nothing for 5.0 s before it went down" in hang
    assert any(
        line.startswith("      native-crash (not excluded): ")
        and "- no fault dump and no signal in the log" in line
        for line in lines
    )


def test_markdown_why_not_lists_the_other_causes_only() -> None:
    lines = list(markdown_lines(_triage()))
    start = lines.index("### Why not something else (I1: hang)")
    section = lines[start + 2 : lines.index("", start + 2)]
    assert [line.split("**")[1] for line in section] == [
        "native-crash",
        "oom-kill",
        "external-kill",
        "unexpected-exit",
    ]
    assert section[0] == (
        "- **native-crash**: not excluded - no fault dump and no signal in the log; the worker "
        "died without Python teardown ('node down: Not properly terminated'), as a process "
        "killed by a fatal signal does"
    )


def test_html_card_folds_what_else_it_could_be() -> None:
    html = render_html(_triage())
    assert '<details class="stack differential">' in html
    assert "What else could it be: 5 causes weighed" in html
    assert "the worker printed nothing for 5.0 s before it went down" in html
    assert 'class="verdict-most-likely chosen"' in html


def test_markup_in_a_reason_stays_text() -> None:
    incident = Incident(
        id="I1",
        cause="hang",
        confidence="low",
        summary="s",
        extra={
            "differential": [
                {"cause": "hang", "verdict": "possible", "for": [EVIL], "against": []},
                {"cause": "native-crash", "verdict": "not excluded", "for": [], "against": [EVIL]},
                "not a row",
            ]
        },
    )
    triage = Triage(source=Source(kind="log", paths=["x.log"]), incidents=[incident])
    html = render_html(triage)
    assert EVIL not in html and "&lt;img src=x onerror=alert(3)&gt;" in html
    assert not any(t == "img" for t, _ in _parse(html).tags)
    markdown = "\n".join(markdown_lines(triage))
    assert EVIL not in markdown
