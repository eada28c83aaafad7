"""Options and output shared by the commands that print a triage."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from forensics.errors import ForensicsError
from forensics.model import Triage
from forensics.render import FORMATS, render

F = TypeVar("F", bound=Callable[..., Any])


def format_option(
    default: str, formats: tuple[str, ...] = FORMATS, help: str = "Output format."
) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(formats),
        default=default,
        show_default=True,
        help=help,
    )


output_option = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write to FILE instead of standard output.",
)
redact_option = click.option(
    "--redact/--no-redact",
    default=True,
    show_default=True,
    help="Scrub secrets, tokens and the home directory. --no-redact shows everything: "
    "do not paste such a report anywhere public.",
)


def emit(
    triage: Triage,
    fmt: str,
    output: Path | None,
    *,
    redact: bool,
    run_env: Mapping[str, str] | None = None,
) -> None:
    from forensics.redact import Redactor

    redactor = Redactor.for_run(run_env) if redact else Redactor.disabled()
    triage = redactor.triage(triage)
    text = render(triage, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    write_file(output, text)
    click.echo(f"forensics: wrote {output}", err=True)


def write_file(path: Path, text: str) -> None:
    """Write a report without following a symlink planted at its path."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise ForensicsError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ForensicsError(f"cannot write {path}: {exc.strerror}") from exc
