"""The run cgroup on a live cgroup v2 hierarchy: leaf move, delegation, procs, events, kill.

The memory controller is bound to v1 on this project's machines, so a cgroup2 hierarchy
mounted here offers other controllers only; ``hugetlb`` stands in for ``memory`` to trigger
the no-internal-processes rule (EBUSY) exactly as ``+memory`` would.  The memory files are
tested against recordings (tests/fixtures/cgroup_v2, test_cgroups_v2_recorded.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from forensics_testkit import unprivileged_python

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount cgroup2")

# Runs inside the parent cgroup, as the supervisor would: makes the run cgroup, starts a
# child in it that double-forks a setsid'd grandchild, kills them all, restores the parent.
HELPER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path
    from forensics.collect.cgroups import CgroupInfo, RunCgroup

    parent, run_id, controller = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    made = RunCgroup.create_in(CgroupInfo(2, "/" + parent.name, parent), run_id, None, controller)
    if isinstance(made, str):
        print(json.dumps({"reason": made}))
        sys.exit(0)
    out = {
        "outer": str(made.outer) if made.outer else None,
        "self_during": open("/proc/self/cgroup").read().strip(),
        "subtree_during": (parent / "cgroup.subtree_control").read_text().split(),
    }
    child = subprocess.Popen(
        ["sh", "-c", "setsid sleep 300 & sleep 300"], preexec_fn=lambda: made.add_pid(0)
    )
    deadline = time.monotonic() + 10
    while len(made.pids()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    out["run_pids"] = made.pids()
    out["events_before"] = (made.dir / "cgroup.events").read_text().split()
    out["killed"] = made.kill_all()
    child.wait()
    out["child_returncode"] = child.returncode
    time.sleep(0.1)
    out["events_after"] = (made.dir / "cgroup.events").read_text().split()
    out["remove"] = made.remove_all()
    out["run_dir_exists"] = made.dir.exists()
    out["self_after"] = open("/proc/self/cgroup").read().strip()
    out["subtree_after"] = (parent / "cgroup.subtree_control").read_text().split()
    print(json.dumps(out))
    """
)


@pytest.fixture
def v2_parent() -> Iterator[Path]:
    """A fresh cgroup under a private cgroup2 mount, with a sleeping process living in it."""
    mnt = Path(tempfile.mkdtemp(prefix="cg2-"))
    mounted = subprocess.run(["mount", "-t", "cgroup2", "none", str(mnt)], capture_output=True)
    if mounted.returncode != 0:
        mnt.rmdir()
        pytest.skip(f"cannot mount cgroup2: {mounted.stderr.decode().strip()}")
    if "hugetlb" not in (mnt / "cgroup.controllers").read_text().split():
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()
        pytest.skip("no controller other than memory is free in cgroup v2 here")
    # The root cgroup is exempt from the no-internal-processes rule: hand the controller down.
    root_control = mnt / "cgroup.subtree_control"
    enabled_at_root = "hugetlb" not in root_control.read_text().split()
    if enabled_at_root:
        root_control.write_text("+hugetlb")
    parent = mnt / f"forensics-test-{uuid.uuid4().hex[:8]}"
    parent.mkdir()
    occupant = subprocess.Popen(["sleep", "300"])
    (parent / "cgroup.procs").write_text(str(occupant.pid))
    try:
        yield parent
    finally:
        occupant.kill()
        occupant.wait()
        for d in sorted(parent.rglob("*"), reverse=True):
            if d.is_dir():
                for pid in (d / "cgroup.procs").read_text().split():
                    subprocess.run(["kill", "-9", pid])
        time.sleep(0.2)
        for d in sorted((p for p in parent.rglob("*") if p.is_dir()), reverse=True):
            d.rmdir()
        parent.rmdir()
        if enabled_at_root:
            try:
                root_control.write_text("-hugetlb")
            except OSError:
                pass  # another cgroup below the root uses it now
        subprocess.run(["umount", str(mnt)], check=True)
        mnt.rmdir()


def _run_helper(parent: Path, user: str | None = None) -> dict[str, object]:
    """Start the helper *in* the parent cgroup (as a supervisor started there would be)."""
    # As another user, an interpreter that user can run (this one may live in root's home).
    python = sys.executable if user is None else unprivileged_python()
    argv = [python, "-c", HELPER, str(parent), "t1", "hugetlb"]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", "--regid=nogroup", "--clear-groups", *argv]
    script = f'echo $$ > {parent}/cgroup.procs && exec "$@"'
    proc = subprocess.run(
        ["sh", "-c", script, "sh", *argv], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _check_full_cycle(parent: Path, out: dict[str, object]) -> None:
    assert "reason" not in out, out["reason"]
    outer = parent / "forensics-t1-outer"
    # The no-internal-processes rule: the parent's processes moved to a sibling leaf first.
    assert out["outer"] == str(outer)
    assert str(out["self_during"]).endswith(f"/{parent.name}/forensics-t1-outer")
    assert "hugetlb" in out["subtree_during"]  # type: ignore[operator]
    assert len(out["run_pids"]) == 3  # type: ignore[arg-type]
    assert "populated 1" in " ".join(out["events_before"])  # type: ignore[arg-type]
    assert set(out["run_pids"]) <= set(out["killed"])  # type: ignore[arg-type]
    assert out["child_returncode"] == -9
    assert "populated 0" in " ".join(out["events_after"])  # type: ignore[arg-type]
    # Afterwards the parent is as it was: no run cgroup, no leaf, processes back, no controller.
    assert out["remove"] is None and out["run_dir_exists"] is False
    assert str(out["self_after"]).endswith(f"/{parent.name}")
    assert out["subtree_after"] == []
    assert not outer.exists()
    assert len((parent / "cgroup.procs").read_text().split()) == 1  # the occupant


def test_root_moves_parent_processes_to_a_leaf_and_back(v2_parent: Path) -> None:
    _check_full_cycle(v2_parent, _run_helper(v2_parent))


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv")
def test_delegated_cgroup_works_for_an_unprivileged_user(v2_parent: Path) -> None:
    # What systemd's Delegate=yes does: the cgroup and its delegation files belong to the user.
    for target in (
        v2_parent,
        *(v2_parent / f for f in ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")),
    ):
        os.chown(target, 65534, 65534)
    # cgroup v2 checks only write access to the delegated files (not who owns the moved
    # process), so the user moves every process of its scope, root's occupant included.
    _check_full_cycle(v2_parent, _run_helper(v2_parent, "nobody"))


def test_undelegated_cgroup_names_the_fix(v2_parent: Path) -> None:
    out = _run_helper(v2_parent, "nobody")
    reason = str(out.get("reason"))
    assert "Permission denied" in reason or "Operation not permitted" in reason, out
    assert "Delegate=yes" in reason
