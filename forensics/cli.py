"""The ``forensics`` command group; each command lives in ``forensics/commands/``."""

from __future__ import annotations

import sys

import click

from forensics import __version__
from forensics.commands import analyze, bisect, report, stress, wrap


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forensics")
def cli() -> None:
    """Crash forensics for Python test suites and worker pools."""


cli.add_command(wrap.command)
cli.add_command(report.command)
cli.add_command(analyze.command)
cli.add_command(stress.command)
cli.add_command(bisect.command)


def main() -> None:
    try:
        cli.main(prog_name="forensics", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - click turns it into Abort first
        sys.exit(130)
