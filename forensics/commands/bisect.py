"""Find the earlier tests that make a crashed or failed test fail when run before it.

\b
  forensics bisect forensics-20261123-140000-4242/
  forensics bisect BUNDLE --incident I2 --format json

Takes the incident's test and the tests that ran before it in the same process, confirms that
the sequence reproduces in one process (-n 0) and that the test alone passes, then shrinks the
earlier tests to the smallest set that still makes it fail or crash (a crash counts as a
failure).  Prints the polluters and a command that reproduces the failure.  Exits 1 when the
failure does not reproduce in one process.  Every trial runs under `forensics wrap` with
--hang-timeout, --timeout and --interrupt-grace; --trial-timeout is the last resort that kills
a trial wrap could not end.

The trials run in the current directory (your checkout) with this interpreter or --python,
never with what the bundle names; the bundle gives only test ids, passed to pytest after "--".
Output is redacted as reports are.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import click

from forensics.bisect.render import FORMATS
from forensics.commands.limits import limit_options, run_limits
from forensics.commands.output import format_option, redact_option
from forensics.errors import UsageError


@click.command("bisect", help=__doc__)
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option(
    "--incident",
    "incident_id",
    default=None,
    metavar="ID",
    help="Incident to bisect (default: the one with the most earlier tests).",
)
@format_option("text", FORMATS, "Output format.")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Runs of the full sequence and of the test alone before the search; how "
    "often the sequence reproduced sets the runs per search trial.",
)
@click.option(
    "--max-runs",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Most runs of one candidate set when the failure is flaky.",
)
@click.option(
    "--trial-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=300.0,
    show_default=True,
    metavar="S",
    help="End a trial that runs longer than S seconds.",
)
@limit_options(passed_to="trial")
@click.option(
    "--python",
    "python",
    default=None,
    metavar="PATH",
    help="Interpreter that runs the trials (default: the one running forensics).",
)
@click.option("--dry-run", is_flag=True, help="Print what the trials would run, and run nothing.")
@click.option("-q", "--quiet", is_flag=True, help="No per-trial progress on stderr.")
@redact_option
def command(
    bundle: Path,
    incident_id: str | None,
    fmt: str,
    repeat: int,
    max_runs: int,
    trial_timeout: float,
    hang_timeout: float,
    timeout: float,
    interrupt_grace: float,
    python: str | None,
    dry_run: bool,
    quiet: bool,
    redact: bool,
) -> None:
    from forensics.bisect.render import render
    from forensics.bisect.search import bisect
    from forensics.bisect.target import load_target
    from forensics.bisect.trial import TrialError
    from forensics.bundle import read_manifest
    from forensics.redact import Redactor

    limits = run_limits(hang_timeout, timeout, interrupt_grace)
    env = read_manifest(bundle).get("environment")
    run_env = {k: v for k, v in env.items() if isinstance(v, str)} if isinstance(env, dict) else {}
    redactor = Redactor.for_run(run_env) if redact else Redactor.disabled()
    if python is not None and shutil.which(python) is None:
        raise UsageError(f"--python {python}: no such interpreter; give a path or a command name")
    target = load_target(bundle, incident_id, python=python)
    plan = (
        f"forensics: bisecting {target.incident} {target.victim} "
        f"({len(target.prior)} earlier test(s)) in {target.rootdir}, each trial like:\n"
        f"  {target.shell_command(target.prior[:3])}"
        + (f"  (+{len(target.prior) - 3} earlier test(s))" if len(target.prior) > 3 else "")
    )
    if dry_run:
        click.echo(redactor.text(target.shell_command(target.prior)))
        return
    if not quiet:
        click.echo(redactor.text(plan), err=True)
    try:
        result = bisect(
            target,
            repeat=repeat,
            max_runs=max_runs,
            timeout=trial_timeout,
            limits=limits,
            progress=_quiet if quiet else _show,
        )
    except TrialError as exc:
        raise TrialError(redactor.text(exc.format_message())) from None
    click.echo(redactor.text(render(result, str(bundle), fmt)), nl=False)
    if result.outcome == "no-repro":
        click.echo(
            redactor.text(
                f"forensics: {target.victim} does not reproduce in one process "
                f"({repeat} run(s) of the full sequence); try --repeat with more runs"
            ),
            err=True,
        )
        sys.exit(1)


def _quiet(line: str) -> None:
    del line


def _show(line: str) -> None:
    click.echo(f"  {line}", err=True)
