"""`forensics stress` on a suite that hangs in teardown on every third run (seed 001's
unbounded `process.wait()`): wrap's limits reach every iteration, hangs are counted with their
phase and grouped by where they are stuck, across levels."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SCENARIO = Path(__file__).parent.parent / "scenarios" / "stress_hang"
CMD = ["--", "python", "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider", "-q", "."]
LIMITS = ["--hang-timeout", "3", "--timeout", "120", "--interrupt-grace", "4"]
FORENSICS = [sys.executable, "-m", "forensics"]

pytestmark = pytest.mark.slow


def _stress(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FORENSICS, "stress", *args], cwd=cwd, capture_output=True, text=True, timeout=280
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stress-hang") / "suite"
    shutil.copytree(SCENARIO, path, ignore=shutil.ignore_patterns(".runs"))
    return path


@pytest.fixture(scope="module")
def stressed(suite: Path) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    proc = _stress(
        "--iterations", "3", "--parallel", "0,2", "--format", "json", *LIMITS, *CMD, cwd=suite
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "failed: hang in teardown" in proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data, elapsed


def test_the_limits_reach_every_iteration(stressed: tuple[dict[str, Any], float], suite: Path):
    data, elapsed = stressed
    # With wrap's default of 300 s, each of the two hung iterations would take five minutes.
    assert elapsed < 150, elapsed
    assert data["limits"] == [
        {"hang_timeout": 3.0, "timeout": 120.0, "interrupt_grace": 4.0, "iterations": 6}
    ]
    db = sqlite3.connect(suite / ".forensics" / "stress.sqlite")
    rows = db.execute("SELECT hang_timeout, timeout, interrupt_grace FROM iterations").fetchall()
    db.close()
    assert rows == [(3.0, 120.0, 4.0)] * 6
    for group in data["signatures"]:
        manifest = json.loads((suite / group["first_bundle"] / "manifest.json").read_text())
        assert manifest["options"]["hang_timeout"] == 3.0
        assert manifest["options"]["timeout"] == 120.0
        assert manifest["options"]["interrupt_grace"] == 4.0


def test_hangs_are_counted_with_their_phase(stressed: tuple[dict[str, Any], float]) -> None:
    data, _ = stressed
    summary = [
        (lv["parallel"], lv["iterations"], lv["passed"], lv["crashed"], lv["hung"])
        for lv in data["levels"]
    ]
    assert summary == [(0, 3, 2, 0, 1), (2, 3, 2, 0, 1)]
    assert [lv["hangs_by_phase"] for lv in data["levels"]] == [{"teardown": 1}, {"teardown": 1}]


def test_one_signature_groups_the_hangs_of_both_levels(
    stressed: tuple[dict[str, Any], float], suite: Path
) -> None:
    data, _ = stressed
    (group,) = data["signatures"]
    assert (group["cause"], group["phase"], group["counts"]) == (
        "hang",
        "teardown",
        {"0": 1, "2": 1},
    )
    assert group["signature"] == (
        "hang at Popen._try_wait (subprocess.py) < Popen._wait (subprocess.py) < "
        "Popen.wait (subprocess.py) < ManagedProcess.__exit__ (_managed.py) < "
        "managed_server (conftest.py)"
    )
    # Seen first in the serial run's second iteration, whose bundle is kept.
    assert group["first_bundle"].endswith("/n0-002")
    assert (suite / group["first_bundle"] / "stacks").is_dir()


def test_markdown_table_adds_up_with_the_history(
    stressed: tuple[dict[str, Any], float], suite: Path
) -> None:
    proc = _stress(
        "--iterations", "1", "--parallel", "0", "--format", "markdown", *LIMITS, *CMD, cwd=suite
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "| Parallelism | Iterations | Passed | Failed | Crashed | Hung | Pass Rate |" in lines
    assert "| serial (-n 0) | 4 | 3 | 1 | 0 | 1 (teardown 1) | **75%** |" in lines
    assert "| -n 2 | 3 | 2 | 1 | 0 | 1 (teardown 1) | **67%** |" in lines
    assert any(
        line.startswith("| hang | teardown | `hang at Popen._try_wait (subprocess.py) < ")
        and "| 1/4 | 1/3 | `" in line
        and "/n0-002` |" in line
        for line in lines
    ), proc.stdout
    assert (
        "Iterations run: 7 with `forensics wrap --hang-timeout 3 --timeout 120 --interrupt-grace 4`"
    ) in lines


def test_bad_limits_are_one_line(suite: Path) -> None:
    proc = _stress("--iterations", "1", "--hang-timeout", "-1", *CMD, cwd=suite)
    assert proc.returncode == 2
    assert "--hang-timeout must be >= 0" in proc.stderr and "Traceback" not in proc.stderr
