"""Run a command under supervision and keep the evidence of every process death.

\b
  forensics wrap -- pytest -n 8 tests/
  forensics wrap --bundle crash-bundle --hang-timeout 300 -- python worker_pool.py

Exits with the command's exit status (128+N when it died of signal N), after one line per
incident on stderr and the `forensics report` command to read the bundle.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import click

from forensics.bundle import BundleError, create_bundle_dir
from forensics.commands.limits import limit_options, run_limits
from forensics.commands.output import write_file
from forensics.errors import ForensicsError
from forensics.supervise.run_state import WrapOptions
from forensics.supervise.supervisor import CommandNotRunnable, Supervisor


def _default_bundle() -> Path:
    return Path(f"forensics-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")


@click.command(
    "wrap",
    help=__doc__,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--bundle",
    "bundle",
    type=click.Path(path_type=Path),
    default=None,
    help="Bundle directory to write (default: ./forensics-<time>-<pid>/).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing bundle directory.")
@limit_options()
@click.option(
    "--foreground",
    is_flag=True,
    help="Give the command the terminal, so it can read it (pdb, input()). Ctrl-C "
    "then goes to the command directly, and forensics cannot diagnose an ignored one.",
)
@click.option(
    "--keep-cores",
    is_flag=True,
    help="Keep the cores of crashed processes (stacks/ names them); by default a core "
    "forensics asked for is deleted once its stacks are read.",
)
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def command(
    bundle: Path | None,
    force: bool,
    hang_timeout: float,
    timeout: float,
    interrupt_grace: float,
    foreground: bool,
    keep_cores: bool,
    argv: tuple[str, ...],
) -> None:
    if not argv:
        raise click.UsageError(
            "give the command to run after --, e.g. forensics wrap -- pytest -n 4"
        )
    limits = run_limits(hang_timeout, timeout, interrupt_grace)
    path = bundle or _default_bundle()
    try:
        create_bundle_dir(path, force=force)
    except BundleError as exc:
        raise ForensicsError(str(exc)) from exc
    options = WrapOptions(
        argv=list(argv),
        bundle=path,
        hang_timeout=limits.hang_timeout or None,
        timeout=limits.timeout or None,
        interrupt_grace=limits.interrupt_grace,
        foreground=foreground,
        keep_cores=keep_cores,
    )
    supervisor = Supervisor(options)
    try:
        status = supervisor.run()
    except CommandNotRunnable as exc:
        click.echo(f"forensics: error: {exc}; check the command", err=True)
        sys.exit(exc.status)
    _summarize(path)
    sys.exit(status)


def _summarize(path: Path) -> None:
    """One line per incident, the HTML report, the CI summary, and the command to read more.

    Rendered here, while the run's environment is still at hand, so the redactor knows every
    secret value the run could have printed.
    """
    from forensics.analyze.triage import analyze_bundle
    from forensics.redact import Redactor
    from forensics.render import early_exit_line
    from forensics.render.ci import report_to_github
    from forensics.render.html import render_html
    from forensics.render.text import incident_line

    try:
        triage = Redactor.for_run(None).triage(analyze_bundle(path))
        write_file(path / "report.html", render_html(triage))
        report_to_github(triage, stream=sys.stderr)
    except Exception as exc:  # the run's exit status matters more than the summary
        click.echo(f"forensics: could not analyze {path}: {type(exc).__name__}: {exc}", err=True)
        triage = None
    if triage is not None:
        early = triage.run.early_exit
        if early:
            error = str(early.get("error") or "").strip().splitlines()
            detail = f": {error[-1][:200]}" if error else ""
            click.echo(f"forensics: {early_exit_line(early)}{detail}", err=True)
        if triage.incidents:
            click.echo(f"forensics: {len(triage.incidents)} incident(s):", err=True)
            for incident in triage.incidents:
                click.echo(f"  {incident_line(incident)}", err=True)
        elif not early:
            click.echo("forensics: no incidents", err=True)
        if triage.expected_deaths:
            click.echo(
                f"forensics: {len(triage.expected_deaths)} process death(s) caused by the tests "
                "themselves (not incidents; listed in the report)",
                err=True,
            )
    html = " (report.html inside)" if (path / "report.html").is_file() else ""
    click.echo(
        f"forensics: bundle in {path}{html}; next: "
        f"forensics report {shlex.quote(str(path))} --format text",
        err=True,
    )
