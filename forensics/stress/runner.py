"""One iteration: the command under ``forensics wrap`` in a subprocess, then its triage.

A subprocess rather than an in-process call: each iteration gets its own supervisor, signal
handling and process group, exactly as a user's ``forensics wrap`` run does.
"""

from __future__ import annotations

import functools
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from forensics.analyze.triage import analyze_bundle
from forensics.bundle import BundleError
from forensics.errors import ForensicsError
from forensics.limits import RunLimits
from forensics.model import Incident, Triage
from forensics.redact import Redactor
from forensics.stress.signatures import signature_of

# pytest statuses that mean the command is wrong, not that a test failed: stop, don't count.
_BAD_COMMAND = {3: "internal error", 4: "usage error", 5: "no tests collected"}
_CRASH_LIKE = {"native-crash", "oom-kill", "external-kill", "unexpected-exit", "hang"}


@dataclass(frozen=True)
class Failure:
    cause: str
    signature: str
    sample: str
    test: str | None
    incident: str
    # The crash happened after other tests in the same process: bisect can look for polluters.
    bisectable: bool
    # setup, call, teardown or collect, when the triage knows (a hang's phase always).
    phase: str | None = None


@dataclass
class Iteration:
    level: int
    index: int
    argv: list[str]
    bundle: Path
    exit_code: int
    seconds: float
    started: float
    failures: list[Failure] = field(default_factory=list)
    limits: RunLimits = field(default_factory=RunLimits)

    @property
    def passed(self) -> bool:
        return self.exit_code == 0 and not self.failures


def run_iteration(
    argv: list[str], level: int, index: int, bundle: Path, limits: RunLimits
) -> Iteration:
    wrap = limits.wrap_command(bundle, argv)
    started = time.time()
    try:
        proc = subprocess.run(
            wrap,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            check=False,
        )
    except OSError as exc:
        raise ForensicsError(
            f"cannot start `forensics wrap` with {wrap[0]}: {exc.strerror or exc}; "
            "run stress with an interpreter this user can execute"
        ) from exc
    seconds = time.time() - started
    last = _last_line(proc.stderr, skip_prefix="forensics:")
    if proc.returncode in _BAD_COMMAND:
        raise ForensicsError(
            redactor().text(
                f"pytest exited {proc.returncode} ({_BAD_COMMAND[proc.returncode]}) at -n "
                f"{level}: {last or 'no output'}; check the command (bundle: {bundle})"
            )
        )
    try:
        triage = analyze_bundle(bundle)
    except (BundleError, OSError) as exc:
        raise ForensicsError(
            redactor().text(
                f"iteration at -n {level} left no readable bundle: {exc}; "
                f"{_last_line(proc.stderr) or 'no output'}"
            )
        ) from exc
    return Iteration(
        level=level,
        index=index,
        argv=argv,
        bundle=bundle,
        exit_code=proc.returncode,
        seconds=seconds,
        started=started,
        failures=failures_of(triage, proc.returncode),
        limits=limits,
    )


def failures_of(triage: Triage, exit_code: int) -> list[Failure]:
    found = [_failure(i, triage.run.cwd) for i in triage.incidents if i.repeat_of is None]
    if exit_code != 0 and not found:
        # Failed without an incident the analyzer could name: still a failed iteration.
        found.append(
            Failure(
                "unknown",
                f"unknown exit status {exit_code}",
                f"exit status {exit_code}",
                None,
                "",
                False,
            )
        )
    return found


@functools.cache
def redactor() -> Redactor:
    """The iterations run with this process's environment: its secrets are theirs."""
    return Redactor.for_run(None)


def _failure(incident: Incident, cwd: str | None) -> Failure:
    # What is kept in the SQLite history and printed is redacted as reports are.
    scrub = redactor().text
    sample = incident.summary
    if incident.cause not in _CRASH_LIKE and incident.evidence:
        sample = _first_line(incident.evidence[0].excerpt) or sample
    return Failure(
        cause=incident.cause,
        signature=scrub(signature_of(incident, cwd)),
        sample=scrub(sample)[:300],
        test=None if incident.test is None else scrub(incident.test),
        incident=incident.id,
        bisectable=bool(incident.test and incident.prior_tests),
        phase=incident.phase,
    )


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _last_line(text: str, skip_prefix: str | None = None) -> str:
    for line in reversed(text.splitlines()):
        if line.strip() and not (skip_prefix and line.startswith(skip_prefix)):
            return line.strip()[:300]
    return ""
