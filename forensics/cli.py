"""The ``forensics`` command group; each command lives in ``forensics/commands/``."""

from __future__ import annotations

import importlib
import os
import sys

import click

from forensics import __version__

# Command name -> module; a command's module is imported only when that command runs, so
# `forensics wrap` does not pay for the analyzers', stress's and bisect's imports.
COMMANDS = {
    "wrap": "forensics.commands.wrap",
    "report": "forensics.commands.report",
    "analyze": "forensics.commands.analyze",
    "stress": "forensics.commands.stress",
    "bisect": "forensics.commands.bisect",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="forensics")
def cli() -> None:
    """Crash forensics for Python test suites and worker pools."""


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
