"""`forensics stress` on a real suite: a racy test and a test that aborts only under xdist."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCENARIO = Path(__file__).parent.parent / "scenarios" / "stress"
CMD = ["--", "python", "-m", "pytest", "-p", "no:randomly", "-q", "."]
FORENSICS = [sys.executable, "-m", "forensics"]

pytestmark = pytest.mark.slow


def _forensics(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FORENSICS, *args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("stress") / "suite"
    shutil.copytree(SCENARIO, path)
    return path


@pytest.fixture(scope="module")
def stressed(suite: Path) -> dict[str, Any]:
    proc = _forensics(
        "stress", "--iterations", "3", "--parallel", "0,2", "--format", "json", *CMD, cwd=suite
    )
    assert proc.returncode == 0, proc.stderr
    assert "ETA" in proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_native_crashes_only_under_xdist(stressed: dict[str, Any]) -> None:
    assert stressed["schema"] == "forensics.stress/1"
    serial, two = stressed["levels"]
    assert (serial["parallel"], serial["iterations"], two["parallel"], two["iterations"]) == (
        0,
        3,
        2,
        3,
    )
    assert "native-crash" not in serial["by_cause"]
    assert two["by_cause"].get("native-crash", 0) >= 1, two
    crash = [s for s in two["signatures"] if s["cause"] == "native-crash"]
    assert [s["signature"] for s in crash] == [
        "native-crash test_b_client.py::test_client_uses_runtime"
    ]


def test_racy_queue_error_groups_under_one_signature(stressed: dict[str, Any], suite: Path) -> None:
    queue = {
        (s["signature"], s["cause"])
        for level in stressed["levels"]
        for s in level["signatures"]
        if "Queue" in s["signature"]
    }
    assert queue == {
        (
            "ValueError: Queue <multiprocessing.queues.Queue object at <addr>> is closed",
            "python-exception",
        )
    }
    # ...although the raw messages carried different addresses.
    db = sqlite3.connect(suite / ".forensics" / "stress.sqlite")
    samples = {
        row[0]
        for row in db.execute(
            "SELECT sample FROM failures WHERE sample LIKE ?", ("ValueError: Queue%",)
        )
    }
    db.close()
    addresses = {re.search(r"0x[0-9a-f]+", s).group() for s in samples}  # type: ignore[union-attr]
    assert len(addresses) >= 2, samples


def test_printed_commands_work_in_a_shell(stressed: dict[str, Any], suite: Path) -> None:
    commands = stressed["next"]
    crash_bundle = next(
        s["bundle"] for s in stressed["levels"][1]["signatures"] if s["cause"] == "native-crash"
    )
    assert f"forensics bisect {crash_bundle} --incident I1" in commands or any(
        c.startswith(f"forensics bisect {crash_bundle} ") for c in commands
    )
    bin_dir = str(Path(sys.executable).parent)
    for command in commands:
        proc = subprocess.run(
            command,
            shell=True,
            cwd=suite,
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": bin_dir + ":/usr/bin:/bin"},
            check=False,
        )
        if command.startswith("forensics report"):
            assert proc.returncode == 0, (command, proc.stderr)
            assert "incidents:" in proc.stdout
        elif crash_bundle in command:
            assert proc.returncode == 0, (command, proc.stderr)
            assert "polluters:\n  test_a_runtime.py::test_start_runtime\n" in proc.stdout
            repro = proc.stdout.split("repro:\n", 1)[1].strip()
            again = subprocess.run(
                repro, shell=True, capture_output=True, text=True, timeout=120, check=False
            )
            assert again.returncode == 134, again.stdout[-2000:]
            assert "collected 2 items" in again.stdout
            assert "in test_client_uses_runtime" in again.stderr
        else:  # the racy test's bundle: it fails on its own, or at least ran
            assert proc.returncode in (0, 1), (command, proc.stderr)
            assert "verdict:" in proc.stdout


def test_later_runs_add_to_the_history_and_render(stressed: dict[str, Any], suite: Path) -> None:
    proc = _forensics(
        "stress", "--iterations", "1", "--parallel", "0", "--format", "markdown", *CMD, cwd=suite
    )
    assert proc.returncode == 0, proc.stderr
    assert "| serial (-n 0) | 4 |" in proc.stdout
    assert "| -n 2 | 3 |" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--iterations", "1", "--parallel", "0,two", *CMD], "--parallel"),
        (["--iterations", "0", *CMD], "--iterations"),
        (["--iterations", "1", "--", "make", "test"], "pytest command"),
    ],
)
def test_usage_errors_are_one_line(suite: Path, args: list[str], message: str) -> None:
    proc = _forensics("stress", *args, cwd=suite)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_a_broken_command_stops_with_one_line(suite: Path, tmp_path: Path) -> None:
    proc = _forensics(
        "stress",
        "--iterations",
        "3",
        "--history",
        str(tmp_path / "h.sqlite"),
        "--",
        "python",
        "-m",
        "pytest",
        "--no-such-flag",
        ".",
        cwd=suite,
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("forensics: error:")]
    assert len(errors) == 1 and "usage error" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
