"""The crash, child-process and hang scenarios again, as an unprivileged user (`nobody`).

CI runs as root; most users do not.  Here the supervisor has no right to a run cgroup, to the
kernel log (dmesg_restrict) or to ptrace beyond its own user.  Attribution must not depend on
those: the test, signal, phase and stacks must be what root gets, and the triage's notes must
say which collectors fell back and why.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import (
    PYTEST,
    SCENARIOS,
    UNPRIVILEGED,
    chown_tree,
    clean_env,
    report_json,
    run,
    unprivileged_dir,
    unprivileged_python,
)

pytestmark = pytest.mark.slow

# test -> (cause, signal, phase, a frame its stack must hold): as root (test_wrap_xdist.py).
EXPECTED = {
    "test_native.py::test_segv": ("native-crash", "SIGSEGV", "call", "test_segv"),
    "test_native.py::test_abort": ("native-crash", "SIGABRT", "call", "test_abort"),
    "test_extkill.py::test_killed_by_helper": ("external-kill", "SIGKILL", "call", None),
    "test_mp.py::test_spawn_child_segv": ("native-crash", "SIGSEGV", "call", "child_segv"),
    "test_mp.py::test_fork_child_segv": ("native-crash", "SIGSEGV", "call", "child_segv"),
    "test_fixture.py::test_teardown_crash": (
        "native-crash",
        "SIGSEGV",
        "teardown",
        "crashes_in_teardown",
    ),
}

# The deadlock root runs in test_hang_e2e.py.
HANG = Path(__file__).parent.parent / "scenarios" / "deadlock" / "test_deadlock.py"


def _wrap_as_nobody(cwd: Path, *args: str) -> tuple[int, dict[str, Any]]:
    python = unprivileged_python()
    chown_tree(cwd)
    bundle = cwd / "bundle"
    argv = [*UNPRIVILEGED, python, "-m", "forensics", "wrap", "--bundle", str(bundle), *args]
    proc = run(argv, cwd, env=clean_env(HOME=str(cwd)))
    assert (bundle / "manifest.json").is_file(), proc.stderr[-3000:]
    return proc.returncode, report_json(bundle, cwd)


def _frames(incident: dict[str, Any]) -> list[str]:
    return [f["name"] for stack in incident["stacks"] for f in stack["frames"]]


def _notes(triage: dict[str, Any]) -> str:
    return "\n".join(triage["notes"])


def test_crashes_and_child_crashes_are_attributed_as_nobody() -> None:
    base = unprivileged_dir("forensics-unpriv-")
    cwd = base / "xdist_mix"
    shutil.copytree(SCENARIOS / "xdist_mix", cwd)
    (cwd / "pytest.ini").write_text("[pytest]\n")
    python = unprivileged_python()
    status, triage = _wrap_as_nobody(cwd, "--", python, *PYTEST[1:], "-n", "4", "--dist", "load")
    assert status == 1
    got = {i["test"]: (i["cause"], i["signal"], i["phase"]) for i in triage["incidents"]}
    assert got == {test: exp[:3] for test, exp in EXPECTED.items()}, got
    for incident in triage["incidents"]:
        frame = EXPECTED[incident["test"]][3]
        if frame is not None:
            assert frame in _frames(incident), incident["summary"]
    notes = _notes(triage)
    # Which collectors fell back, and why, in the user's own words of the fix.
    assert "cgroup: cannot create cgroup" in notes and "Permission denied" in notes, notes
    assert "surrounding cgroup" in notes, notes
    assert "kernel-log: no kernel log readable" in notes, notes


def test_hang_stacks_as_nobody() -> None:
    base = unprivileged_dir("forensics-unpriv-hang-")
    shutil.copy(HANG, base / "test_hang.py")
    (base / "pytest.ini").write_text("[pytest]\n")
    python = unprivileged_python()
    status, triage = _wrap_as_nobody(
        base, "--hang-timeout", "3", "--", python, *PYTEST[1:], "-n", "2", "test_hang.py"
    )
    assert status == 1
    [incident] = triage["incidents"]
    assert (incident["cause"], incident["test"]) == ("hang", "test_hang.py::test_deadlock")
    assert incident["phase"] == "call"
    # Same user, no Yama here: py-spy attaches; under Yama scope 1 the agent's PR_SET_PTRACER
    # lets it (tests/unit/test_ptracer.py); either way both threads' frames are there.
    frames = _frames(incident)
    assert "test_deadlock" in frames, frames
    assert any(name.endswith("first_then_second") for name in frames), frames
