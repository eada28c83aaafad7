"""What the bundle triage builds on: the bundle's facts and what the steps share.

The triage is one builder made of steps (:mod:`forensics.analyze.triage`); this is their common
state, set up once per bundle, and the small facts every step asks (the test running at a
death, an exit status, the command that reproduces a test).
"""

from __future__ import annotations

import shlex
from typing import Any

from forensics.analyze.bundle_source import BundleData, ProcessRecord, TestRun
from forensics.analyze.memory_facts import _cgroup_oom_kills, _oom_kills, _sampled_memory
from forensics.analyze.output_faults import OutputFaults
from forensics.analyze.ownership import Owner, Ownership, test_at
from forensics.analyze.signals import (
    SignalLog,
    killed_by_forensics,
)
from forensics.model import (
    ExpectedDeath,
    Incident,
)

NATIVE_SIGNALS = {"SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS", "SIGTRAP"}
KILL_SIGNALS = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGALRM"}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# A death time read by the supervisor rather than stamped by the kernel comes a little late.
_DEATH_TIME_SLACK_S = 0.25


def _test_at_death(owner: Owner, rec: ProcessRecord) -> TestRun | None:
    """The test its owner process was running when *rec* died (the owner's, when unknown)."""
    if rec.end is None:
        return owner.test
    return test_at(owner.process, rec.end) or test_at(owner.process, rec.end - _DEATH_TIME_SLACK_S)


def _exit_status(rec: ProcessRecord) -> int | None:
    if rec.exit_code is not None:
        return rec.exit_code
    if rec.signal is not None:
        import signal as signal_module

        try:
            return 128 + int(signal_module.Signals[rec.signal])
        except KeyError:
            return None
    return None


def _short_argv(argv: list[str]) -> str:
    text = " ".join(argv) or "?"
    return text if len(text) <= 60 else text[:57] + "..."


def _quote(arg: str) -> str:
    """shlex.quote, but a redacted home (``~/``) stays unquoted so the shell expands it."""
    if arg.startswith("~/"):
        return "~/" + shlex.quote(arg[2:])
    return shlex.quote(arg)


def _shell_command(cwd: str | None, argv: list[str]) -> str:
    command = " ".join(_quote(arg) for arg in argv)
    return f"cd {_quote(cwd)} && {command}" if cwd else command


def _repro(rec: ProcessRecord, nodeids: list[str]) -> str | None:
    """Re-run these tests in one process, in this order, as the process that died ran them."""
    if not nodeids:
        return None
    python = rec.executable or "python"
    args = [python, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    if rec.xdist:
        args += ["-n", "0"]
    # After "--" a test id from a bundle cannot act as an option in a command someone pastes.
    args += ["--", *nodeids]
    return _shell_command(rec.rootdir or rec.cwd, args)


class TriageState:
    """The bundle and what the steps of the triage share; set up once per bundle."""

    def __init__(self, data: BundleData) -> None:
        self.data = data
        self.incidents: list[Incident] = []
        self.notes = list(data.notes)
        self.oom_kills = _oom_kills(data)
        self.oom_pids = {
            pid: str(kill.get("line") or "OOM kill")[:1000] for pid, kill in self.oom_kills.items()
        }
        self.sampled = _sampled_memory(data)
        self.cgroup_oom = _cgroup_oom_kills(data)
        self.killed_by_us = killed_by_forensics(data)
        self.complete = isinstance(data.manifest.get("end"), (int, float))
        self.ownership = Ownership(data)
        self.output_faults = OutputFaults(data.path)
        self.claimed_captures: set[tuple[int, str, int]] = set()
        # Records of the run's own pytest session; a session a test ran (pytester) is the test's.
        self.controller_records = [
            r
            for r in data.controller_records
            if not isinstance(r.get("pid"), int) or self.ownership.top_level(r["pid"])
        ]
        self.expected: list[ExpectedDeath] = []
        # Kills of a failed test's processes: attached to that test's failure once it exists.
        self.consequences: list[tuple[Owner, ProcessRecord, str]] = []
        self.signals = SignalLog.load(data.path)

    def _prior_and_repro(self, rec: ProcessRecord, nodeid: str) -> tuple[list[str], str | None]:
        names = [t.nodeid for t in rec.tests]
        prior = names[: names.index(nodeid)] if nodeid in names else names
        return prior, _repro(rec, [*prior, nodeid])

    def _controller(self) -> ProcessRecord | None:
        for rec in self.data.processes.values():
            if rec.role in ("controller", "single") and self.ownership.top_level(rec.pid):
                return rec
        return None
