"""What to bisect: the victim test, the tests before it in its process, and how to run them."""

from __future__ import annotations

import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from forensics.analyze.bundle_source import BundleData, ProcessRecord, load_bundle
from forensics.analyze.triage import analyze_bundle
from forensics.bundle import BundleError
from forensics.errors import InputError
from forensics.model import Incident

# Plugins that would change the order or carry state between trials.
_BASE_FLAGS = ("-p", "no:randomly", "-p", "no:cacheprovider")


@dataclass(frozen=True)
class Target:
    incident: str
    cause: str
    victim: str
    prior: tuple[str, ...]
    python: str
    rootdir: str
    # The original run used xdist: trials must not inherit "-n auto" from an ini file.
    xdist: bool

    def argv(
        self, earlier: list[str] | tuple[str, ...], options: tuple[str, ...] = ()
    ) -> list[str]:
        args = [self.python, "-m", "pytest", *_BASE_FLAGS]
        if self.xdist:
            args += ["-n", "0"]
        # The test ids come from the bundle: after "--" pytest reads them as test ids only,
        # never as options (a test id "--basetemp=DIR" would make pytest delete DIR).
        return [*args, *options, "--", *earlier, self.victim]

    def shell_command(self, earlier: list[str] | tuple[str, ...]) -> str:
        return f"cd {shlex.quote(self.rootdir)} && {shlex.join(self.argv(earlier))}"


# A pytest node id: a relative path inside the checkout, then "::" parts.  Anything else in a
# bundle (an option, an absolute path, "..") is refused rather than handed to pytest.
_NODE_ID = re.compile(r"[\w.][^\x00-\x1f\x7f]*")


def check_node_id(nodeid: str) -> str:
    """Return *nodeid* if it is a test id pytest can only read as a test, else raise."""
    path = nodeid.split("::", 1)[0]
    parts = path.replace("\\", "/").split("/")
    if not _NODE_ID.fullmatch(nodeid) or ".." in parts or not path:
        raise InputError(
            f"the bundle names {nodeid[:200]!r} as a test, which is not a test id inside the "
            "checkout; bisect runs only node ids such as tests/test_x.py::test_y"
        )
    return nodeid


def load_target(
    bundle: Path, incident_id: str | None, python: str | None = None, rootdir: Path | None = None
) -> Target:
    """The incident to bisect, run with *python* (default: this interpreter) in *rootdir*
    (default: the current directory): never the interpreter or directory the bundle names."""
    try:
        triage = analyze_bundle(bundle)
        data = load_bundle(bundle)
    except BundleError as exc:
        raise InputError(str(exc)) from exc
    incident = _pick(triage.incidents, incident_id)
    assert incident.test is not None
    rec = _process(data, incident)
    return Target(
        incident=incident.id,
        cause=incident.cause,
        victim=check_node_id(incident.test),
        prior=tuple(check_node_id(t) for t in incident.prior_tests),
        python=python or sys.executable,
        rootdir=os.fspath(rootdir or Path.cwd()),
        xdist=bool(rec and rec.xdist),
    )


def _pick(incidents: list[Incident], incident_id: str | None) -> Incident:
    with_test = [i for i in incidents if i.test]
    if incident_id is not None:
        found = next((i for i in incidents if i.id == incident_id), None)
        if found is None:
            known = ", ".join(i.id for i in incidents) or "none"
            raise InputError(f"no incident {incident_id} in the bundle (incidents: {known})")
        if not found.test:
            choices = ", ".join(f"{i.id} ({i.test})" for i in with_test) or "none"
            raise InputError(
                f"incident {incident_id} names no test to bisect; "
                f"choose one with --incident: {choices}"
            )
        return found
    if not with_test:
        raise InputError("the bundle has no failed or crashed test to bisect")
    # The one with the longest history first: that is where pollution can hide.
    return max(with_test, key=lambda i: (len(i.prior_tests), -with_test.index(i)))


def _process(data: BundleData, incident: Incident) -> ProcessRecord | None:
    rec = data.processes.get(incident.pid) if incident.pid is not None else None
    if rec is not None and rec.role is None and rec.ppid is not None:
        # The incident is a child process a test started: the tests ran in its parent.
        rec = data.processes.get(rec.ppid, rec)
    if rec is None or rec.executable is None:
        rec = next((r for r in data.processes.values() if r.role and r.executable), rec)
    return rec
