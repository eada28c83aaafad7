"""Triage raw CI logs or JUnit XML: the same incidents as `report`, from a run nobody wrapped.

\b
  forensics analyze ci.log                        # terminal summary
  forensics analyze job-*.log.gz --format json    # several logs: signatures x logs table
  curl -sL "$LOG_URL" | forensics analyze -       # '-' reads standard input
  forensics analyze junit.xml --format markdown -o issue.md

Logs may be gzip-compressed and carry GitHub Actions, GitLab or Jenkins decorations.
Reports are redacted (secrets, tokens, home directory) unless --no-redact is given.
"""

from __future__ import annotations

from pathlib import Path

import click

from forensics.commands.output import emit, format_option, output_option, redact_option


@click.command("analyze", help=__doc__)
@click.argument("logs", nargs=-1, required=True)
@format_option(default="text")
@output_option
@redact_option
def command(logs: tuple[str, ...], fmt: str, output: Path | None, redact: bool) -> None:
    from forensics.analyze.logs import analyze_logs

    triage = analyze_logs(list(logs))
    emit(triage, fmt, output, redact=redact)
