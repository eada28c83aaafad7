"""Re-run a pytest command N times per xdist level, each run under `forensics wrap`.

\b
  forensics stress --iterations 20 --parallel 0,4,8 -- python -m pytest tests/
  forensics stress --iterations 100 --parallel 16 --until-fail -- pytest tests/router
  forensics stress --iterations 50 --parallel 0,8 --time-budget 3600 --format markdown -- pytest
  forensics stress --iterations 20 --parallel 0,4 --hang-timeout 10 -- pytest tests/

Level 0 runs the command with -n 0 (no xdist workers); level K with -n K, replacing any -n
already in the command.  Levels take turns, one iteration each, so a time budget or Ctrl-C
still leaves comparable counts.  Every iteration is recorded in a SQLite history (default
.forensics/stress.sqlite), so later runs of the same command add to the same table.  Bundles
of failed iterations are kept (passed ones are removed unless --keep-passed); the output ends
with the commands to look at them.  --hang-timeout, --timeout and --interrupt-grace are
wrap's and go to every iteration: a short --hang-timeout keeps a suite that hangs from costing
wrap's default 300 s per hung iteration.  Exits 0 when the runs are done, failures or not.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from forensics.commands.limits import limit_options, run_limits
from forensics.commands.output import format_option
from forensics.stress.render import FORMATS

if TYPE_CHECKING:
    from forensics.stress.runner import Iteration


@click.command(
    "stress",
    help=__doc__,
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option(
    "--iterations", type=click.IntRange(min=1), required=True, metavar="N", help="Runs per level."
)
@click.option(
    "--parallel",
    "parallel",
    default="0",
    show_default=True,
    metavar="LEVELS",
    help="xdist worker counts separated by commas; 0 = without xdist.",
)
@click.option("--until-fail", is_flag=True, help="Stop after the first failed iteration.")
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Start no new iteration after S seconds.",
)
@limit_options(passed_to="iteration")
@format_option("text", FORMATS, "Output format (stdout).")
@click.option(
    "--history",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="SQLite history file [default: .forensics/stress.sqlite].",
)
@click.option(
    "--bundles",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where iteration bundles go [default: .forensics/stress/<session>/].",
)
@click.option("--keep-passed", is_flag=True, help="Keep the bundles of passed iterations too.")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def command(
    iterations: int,
    parallel: str,
    until_fail: bool,
    time_budget: float | None,
    hang_timeout: float,
    timeout: float,
    interrupt_grace: float,
    fmt: str,
    history: Path | None,
    bundles: Path | None,
    keep_passed: bool,
    argv: tuple[str, ...],
) -> None:
    from forensics.stress.argv import at_level, check_pytest_command, command_key, parse_levels
    from forensics.stress.history import DEFAULT_HISTORY, History
    from forensics.stress.render import StressReport, render
    from forensics.stress.runner import redactor, run_iteration

    levels = parse_levels(parallel)
    limits = run_limits(hang_timeout, timeout, interrupt_grace)
    cmd = list(argv)
    check_pytest_command(cmd)
    session = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bundle_root = bundles or Path(".forensics") / "stress" / session
    store = History(history or DEFAULT_HISTORY)
    # The history and the output keep the command redacted, as reports do.
    key, cwd = redactor().text(command_key(cmd)), os.getcwd()
    plan = [(i, level) for i in range(iterations) for level in levels]
    started = time.monotonic()
    ran = 0
    stopped = None
    try:
        bundle_root.mkdir(parents=True, exist_ok=True)
        with click.progressbar(
            length=len(plan), label="forensics stress", file=sys.stderr, show_eta=True
        ) as bar:
            for index, level in plan:
                if time_budget is not None and time.monotonic() - started >= time_budget:
                    stopped = f"time budget of {time_budget:g}s used"
                    break
                bundle = bundle_root / f"n{level}-{index + 1:03d}"
                it: Iteration = run_iteration(
                    at_level(cmd, level), level, index + 1, bundle, limits
                )
                store.add(session, key, cwd, it)
                ran += 1
                if it.passed and not keep_passed:
                    shutil.rmtree(bundle, ignore_errors=True)
                if not sys.stderr.isatty():  # a log has no bar to redraw: one line each
                    click.echo(_line(it, ran, len(plan), time.monotonic() - started), err=True)
                bar.update(1)
                if until_fail and not it.passed:
                    stopped = f"first failure (--until-fail) at -n {level}"
                    break
        report = StressReport(
            command=key,
            cwd=cwd,
            history=str(store.path),
            sessions=store.sessions(key, cwd),
            session=session,
            ran=ran,
            stopped=stopped,
            levels=store.levels(key, cwd),
            groups=store.groups(key, cwd),
            limits=store.limits(key, cwd),
        )
    finally:
        store.close()
    click.echo(redactor().text(render(report, fmt)), nl=False)


def _line(it: Iteration, done: int, total: int, elapsed: float) -> str:
    causes = sorted({f.cause + (f" in {f.phase}" if f.phase else "") for f in it.failures})
    what = "passed" if it.passed else "failed: " + ", ".join(causes)
    eta = elapsed / done * (total - done)
    return (
        f"  [{done}/{total}] -n {it.level} #{it.index}: {what} ({it.seconds:.1f}s), ETA {eta:.0f}s"
    )
