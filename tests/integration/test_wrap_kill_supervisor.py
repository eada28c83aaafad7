"""SIGKILL the supervisor mid-run: nothing of the run survives it, and the bundle still reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from forensics_testkit import PYTEST, clean_env, copy_scenario, report_json

pytestmark = pytest.mark.slow


def _marked(run_id: str) -> set[int]:
    """Live processes whose environment carries this run's id."""
    marker = f"FORENSICS_RUN_ID={run_id}".encode()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as fh:
                state = fh.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != b"Z":
            found.add(int(name))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    cwd = copy_scenario("kill_supervisor", tmp_path_factory.mktemp("killsup"))
    bundle = cwd / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--"]
    argv += [*PYTEST, "-n", "2", "-p", "no:randomly"]
    supervisor = subprocess.Popen(
        argv,
        cwd=cwd,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    alive_dir = cwd / "alive"
    run_id = None
    try:
        deadline = time.monotonic() + 120
        # Both workers are in a sleeping test (each wrote its pid and its child's pid).
        while time.monotonic() < deadline:
            if alive_dir.is_dir() and len(list(alive_dir.iterdir())) >= 4:
                break
            assert supervisor.poll() is None, "the run ended before the tests could be killed"
            time.sleep(0.1)
        else:
            pytest.fail("the sleeping tests never started")
        run_id = json.loads((bundle / "manifest.json").read_text())["run_id"]
        before = _marked(run_id)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait()
        time.sleep(5)
        after = _marked(run_id)
        pids = [int(p.name) for p in alive_dir.iterdir()]
        return {
            "cwd": cwd,
            "bundle": bundle,
            "before": before,
            "after": after,
            "pids": pids,
            "alive": [p for p in pids if _alive(p)],
        }
    finally:
        # Whatever the outcome, leave nothing behind.
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        if run_id is not None:
            for pid in _marked(run_id):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if alive_dir.is_dir():
            for p in alive_dir.iterdir():
                try:
                    os.kill(int(p.name), signal.SIGKILL)
                except (OSError, ValueError):
                    pass


def test_no_process_of_the_run_outlives_the_supervisor_by_5s(killed: dict[str, object]) -> None:
    before = killed["before"]
    assert isinstance(before, set) and len(before) >= 5  # controller, 2 workers, 2 grandchildren
    assert killed["after"] == set()
    assert killed["alive"] == []


def test_report_reads_the_cut_short_bundle(killed: dict[str, object]) -> None:
    bundle = killed["bundle"]
    assert isinstance(bundle, Path)
    triage = report_json(bundle)
    assert triage["run"]["exit_code"] is None
    assert triage["run"]["complete"] is False
    assert any("did not finish" in note for note in triage["notes"])
    # The four quick tests finished before the kill; the sleeping ones never did.
    assert triage["run"]["tests"]["passed"] == 4
    assert triage["run"]["tests"]["failed"] == 0
    assert triage["run"]["command"][-4:] == ["-n", "2", "-p", "no:randomly"]
