"""Render the triage of a bundle written by `forensics wrap`.

\b
  forensics report forensics-20261123-140000-4242/             # HTML into the bundle
  forensics report BUNDLE --format text
  forensics report BUNDLE --format markdown -o issue.md       # for an upstream bug report

Reports are redacted (secrets, tokens, home directory) unless --no-redact is given.
"""

from __future__ import annotations

from pathlib import Path

import click

from forensics.bundle import BundleError
from forensics.commands.output import emit, format_option, output_option, redact_option
from forensics.errors import InputError


@click.command("report", help=__doc__)
@click.argument("bundle", type=click.Path(path_type=Path))
@format_option(default="html")
@output_option
@redact_option
def command(bundle: Path, fmt: str, output: Path | None, redact: bool) -> None:
    from forensics.analyze.triage import analyze_bundle

    try:
        triage = analyze_bundle(bundle)
    except BundleError as exc:
        raise InputError(str(exc)) from exc
    if fmt == "html" and output is None:
        output = bundle / "report.html"
    emit(triage, fmt, output, redact=redact, run_env=_run_env(bundle))


def _run_env(bundle: Path) -> dict[str, str]:
    from forensics.bundle import read_manifest

    env = read_manifest(bundle).get("environment")
    if not isinstance(env, dict):
        return {}
    return {k: v for k, v in env.items() if isinstance(k, str) and isinstance(v, str)}
