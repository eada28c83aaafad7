"""One error hierarchy; :func:`forensics.cli.main` is the one place that turns it into an exit."""

from __future__ import annotations

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


class ForensicsError(click.ClickException):
    """A failure the user can act on: printed as one line on stderr, exit status 1."""

    exit_code = EXIT_FAILED

    def show(self, file: object = None) -> None:
        click.echo(f"forensics: error: {self.format_message()}", err=True)


class InputError(ForensicsError):
    """The input (a bundle, a log) is missing, unreadable or not what the command reads."""


class UsageError(click.UsageError):
    """A bad flag or argument: exit status 2."""
