"""The ``forensics`` command group; each command lives in ``forensics/commands/``."""

from __future__ import annotations

import os
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
        cli.main(prog_name="forensics", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("forensics: interrupted", err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:
        # A bug of ours: one line, and the traceback only on request.
        if os.environ.get("FORENSICS_DEBUG"):
            raise
        click.echo(
            f"forensics: internal error: {type(exc).__name__}: {exc} "
            "(set FORENSICS_DEBUG=1 for the traceback, and please report it)",
            err=True,
        )
        sys.exit(1)
