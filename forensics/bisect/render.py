"""Views of a :class:`~forensics.bisect.search.Bisection`: JSON data first, text and Markdown
as generators of lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from forensics.bisect.search import Bisection

BISECT_SCHEMA = "forensics.bisect/1"
FORMATS = ("text", "json", "markdown")

_VERDICT = {
    "polluters": "earlier tests make it fail",
    "fails-alone": "fails on its own — no polluter needed",
    "no-repro": "does not reproduce in one process",
}


def to_dict(b: Bisection, bundle: str) -> dict[str, Any]:
    t = b.target
    return {
        "schema": BISECT_SCHEMA,
        "bundle": bundle,
        "incident": t.incident,
        "cause": t.cause,
        "victim": t.victim,
        "prior_tests": len(t.prior),
        "outcome": b.outcome,
        "verdict": _VERDICT[b.outcome],
        "polluters": b.polluters,
        "repro": b.repro,
        "confirm": {"runs": b.confirm_runs, "reproduced": b.confirm_reproduced},
        "runs_per_trial": b.runs_per_trial,
        "trials": b.trials,
        "runs": b.runs,
        "duration_s": round(b.seconds, 3),
    }


def text_lines(b: Bisection, bundle: str) -> Iterator[str]:
    t = b.target
    yield f"forensics bisect of {bundle} {t.incident} [{t.cause}]"
    yield f"  victim:      {t.victim}"
    yield f"  verdict:     {_VERDICT[b.outcome]}"
    yield (
        f"  searched:    {len(t.prior)} earlier test(s); full sequence reproduced "
        f"{b.confirm_reproduced}/{b.confirm_runs}; {b.trials} trial(s), {b.runs} pytest run(s), "
        f"{b.seconds:.1f}s"
    )
    if b.outcome == "polluters":
        yield "polluters:"
        yield from (f"  {p}" for p in b.polluters)
    if b.repro is not None:
        yield "repro:"
        yield f"  {b.repro}"


def markdown_lines(b: Bisection, bundle: str) -> Iterator[str]:
    t = b.target
    yield f"### `{_code(t.victim)}`: {_VERDICT[b.outcome]}"
    yield ""
    yield (
        f"{len(t.prior)} earlier test(s) in the same process; the full sequence reproduced "
        f"{b.confirm_reproduced}/{b.confirm_runs} times; {b.trials} trials, {b.runs} runs."
    )
    if b.polluters:
        yield ""
        yield "Polluters:"
        yield from (f"- `{_code(p)}`" for p in b.polluters)
    if b.repro is not None:
        yield ""
        yield "```sh"
        yield b.repro
        yield "```"


def _code(text: str) -> str:
    return text.replace("`", "'")


def render(b: Bisection, bundle: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(to_dict(b, bundle), indent=2) + "\n"
    lines = markdown_lines(b, bundle) if fmt == "markdown" else text_lines(b, bundle)
    return "\n".join(lines) + "\n"
