"""One trial: run some earlier tests and then the victim in one pytest process.

A trial reproduces when the victim fails, or when the process dies (or hangs) while the
victim is the test running.  The victim's outcome comes from a JUnit XML file, and which test
was running when the process died from pytest's ``-v`` progress lines, which are written
before a test starts: a crash leaves no JUnit file behind, but leaves that line.  Each trial
runs under ``forensics wrap`` with the user's limits, so a trial that hangs is ended (with its
stacks) after ``--hang-timeout`` as a stress iteration or a wrapped run would be.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from forensics.bisect.target import Target
from forensics.bundle import EVENTS, read_jsonl
from forensics.errors import ForensicsError
from forensics.limits import WRAP_DEFAULTS, RunLimits

# pytest's exit statuses that mean the trial could not run the tests at all.
_NOT_RUN = {
    2: "interrupted (a collection error?)",
    3: "internal error",
    4: "usage error",
    5: "no tests collected",
}


class TrialError(ForensicsError):
    """The trial command did not run the tests: the bundle no longer matches the checkout."""


@dataclass(frozen=True)
class TrialResult:
    reproduced: bool
    how: str  # "failed", "crashed (status N)", "timed out", "passed", "skipped"
    seconds: float


def run_trial(
    target: Target, earlier: tuple[str, ...], timeout: float, limits: RunLimits = WRAP_DEFAULTS
) -> TrialResult:
    with tempfile.TemporaryDirectory(prefix="forensics-bisect-") as tmp:
        junit = Path(tmp) / "junit.xml"
        bundle = Path(tmp) / "bundle"
        argv = target.argv(earlier, ("-v", f"--junitxml={junit}"))
        started = time.monotonic()
        status, output, timed_out = _run(limits.wrap_command(bundle, argv), target.rootdir, timeout)
        seconds = time.monotonic() - started
        running = _last_started(output, [*earlier, target.victim])
        victim_running = running == target.victim
        if timed_out:
            return TrialResult(victim_running, "timed out", seconds)
        if _wrap_ended_it(bundle):
            return TrialResult(victim_running, "hung", seconds)
        if status < 0 or status >= 128:
            return TrialResult(victim_running, f"crashed (status {_shell_status(status)})", seconds)
        outcome = _junit_outcome(junit, target.victim)
        if outcome is None:
            if status in _NOT_RUN:
                tail = " | ".join(line for line in output.splitlines()[-3:] if line.strip())
                raise TrialError(
                    f"pytest exited {status} ({_NOT_RUN[status]}) in {target.rootdir}: {tail[:300]}"
                    " — do the tests in the bundle still exist there?"
                )
            return TrialResult(False, "not run", seconds)
        return TrialResult(outcome in ("failed", "error"), outcome, seconds)


def _run(argv: list[str], cwd: str, timeout: float) -> tuple[int, str, bool]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORENSICS_", "PYTEST_XDIST_"))}
    # Own session: a timeout ends the pytest process and everything it started.
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        text=True,
        errors="replace",
    )
    try:
        output, _ = proc.communicate(timeout=timeout)
        return proc.returncode, output, False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        return proc.returncode, output, True
    finally:
        if proc.poll() is None:  # Ctrl-C while waiting
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wrap_ended_it(bundle: Path) -> bool:
    """wrap found a hang (--hang-timeout) or hit --timeout and ended the trial."""
    return any(ev.get("kind") in ("stall", "timeout") for ev in read_jsonl(bundle / EVENTS))


def _shell_status(status: int) -> int:
    return 128 - status if status < 0 else status


def _last_started(output: str, nodeids: list[str]) -> str | None:
    """The test whose ``-v`` line came last: the one running when the output stopped."""
    wanted = set(nodeids)
    spaced = [n for n in nodeids if " " in n]
    last = None
    for line in output.splitlines():
        head = line.split(" ", 1)[0]
        if head in wanted:
            last = head
        else:
            last = next((n for n in spaced if line.startswith(n + " ")), last)
    return last


def junit_names(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml writes them for *nodeid*."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _junit_outcome(junit: Path, nodeid: str) -> str | None:
    try:
        root = ET.parse(junit).getroot()
    except (OSError, ET.ParseError):
        return None
    classname, name = junit_names(nodeid)
    outcome = None
    for case in root.iter("testcase"):
        if case.get("classname") != classname or case.get("name") != name:
            continue
        tags = {child.tag for child in case}
        # A test that passed its call but errored in teardown has two testcase entries.
        if "failure" in tags:
            return "failed"
        if "error" in tags:
            return "error"
        outcome = "skipped" if "skipped" in tags else (outcome or "passed")
    return outcome
