"""GitHub Actions output: the Markdown summary for the job page, ``::error`` annotations.

Annotations only make sense for an incident whose stacks reach a file of the repository at a
known line: GitHub attaches them to that line of the diff.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TextIO

from forensics.model import Frame, Incident, Triage
from forensics.render.markdown import ordered_incidents, render_markdown

# GitHub drops annotations beyond 10 errors per step; the first ones are the ones that matter.
MAX_ANNOTATIONS = 10


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _relative(path: str, root: str | None) -> str | None:
    """``path`` inside the repository, or None for a file outside it (site-packages, stdlib)."""
    if "site-packages" in path or "dist-packages" in path or path.startswith(("<", "~")):
        return None
    if os.path.isabs(path):
        if not root:
            return None
        rel = os.path.relpath(path, root)
        return None if rel.startswith("..") else rel
    return path


def incident_location(inc: Incident, root: str | None = None) -> tuple[str, int] | None:
    """The repository line an incident points at: its test's file first, then its own code."""
    test_file = inc.test.split("::", 1)[0] if inc.test else None
    frames: list[Frame] = [
        f for s in inc.stacks for f in s.frames if not f.native and f.file and f.line is not None
    ]
    located = [(f, _relative(f.file or "", root)) for f in frames]
    if test_file:
        for frame, rel in located:
            if rel is not None and rel == test_file and frame.line is not None:
                return rel, frame.line
    for frame, rel in located:
        if rel is not None and frame.line is not None:
            return rel, frame.line
    return None


def github_annotations(triage: Triage, root: str | None = None) -> list[str]:
    """``::error file=F,line=N,title=T::message`` lines for incidents with a file and line."""
    root = root if root is not None else triage.run.cwd
    lines = []
    for inc in ordered_incidents(triage):
        where = incident_location(inc, root)
        if where is None:
            continue
        file, line = where
        title = f"{inc.cause} ({inc.confidence} confidence)"
        message = inc.summary
        if inc.native_library:
            message += f"\nnative library: {inc.native_library}"
        if inc.repro:
            message += f"\nreproduce: {inc.repro}"
        lines.append(
            f"::error file={_escape_property(file)},line={line},"
            f"title={_escape_property(title)}::{_escape_data(message)}"
        )
        if len(lines) == MAX_ANNOTATIONS:
            break
    return lines


def write_step_summary(triage: Triage, path: str) -> None:
    """Append the Markdown summary to the job's step summary file (GitHub reads it at step end)."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(render_markdown(triage))
        out.write("\n")


def report_to_github(
    triage: Triage, environ: Mapping[str, str] | None = None, stream: TextIO | None = None
) -> bool:
    """What ``wrap`` does under GitHub Actions; returns whether it was under GitHub Actions."""
    env = os.environ if environ is None else environ
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        write_step_summary(triage, summary)
    if env.get("GITHUB_ACTIONS") == "true" or summary:
        out = stream or sys.stdout
        for line in github_annotations(triage, env.get("GITHUB_WORKSPACE") or triage.run.cwd):
            print(line, file=out)
        out.flush()
        return True
    return False
