"""``--hang-timeout``, ``--timeout`` and ``--interrupt-grace``: declared once for ``wrap``,
``stress`` and ``bisect``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from forensics.errors import UsageError
from forensics.limits import DEFAULT_HANG_TIMEOUT, DEFAULT_INTERRUPT_GRACE, RunLimits

F = TypeVar("F", bound=Callable[..., Any])


def limit_options(passed_to: str | None = None) -> Callable[[F], F]:
    """The three options; *passed_to* names the runs that get them ("iteration", "trial")."""
    runs = f" Passed to every {passed_to}." if passed_to else ""
    options = [
        click.option(
            "--hang-timeout",
            type=float,
            default=DEFAULT_HANG_TIMEOUT,
            metavar="S",
            show_default=True,
            help="A test that makes no progress for S seconds is a hang: its stacks are taken "
            "and its worker ended. 0 turns it off." + runs,
        ),
        click.option(
            "--timeout",
            type=float,
            default=0,
            metavar="S",
            help="End the whole run after S seconds, with evidence. 0 (default) turns it off."
            + runs,
        ),
        click.option(
            "--interrupt-grace",
            type=float,
            default=DEFAULT_INTERRUPT_GRACE,
            metavar="S",
            show_default=True,
            help="After Ctrl-C or SIGTERM, how long the command gets to exit by itself." + runs,
        ),
    ]

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_limits(hang_timeout: float, timeout: float, interrupt_grace: float) -> RunLimits:
    for name, value in (
        ("--hang-timeout", hang_timeout),
        ("--timeout", timeout),
        ("--interrupt-grace", interrupt_grace),
    ):
        if value < 0 or value != value:  # NaN compares unequal to itself
            off = " (0 turns it off)" if name != "--interrupt-grace" else ""
            raise UsageError(f"{name} must be >= 0{off}, got {value:g}")
    return RunLimits(hang_timeout, timeout, interrupt_grace)
