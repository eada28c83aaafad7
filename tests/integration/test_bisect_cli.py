"""`forensics bisect` on real bundles: one polluter among 50 earlier tests, and the edge cases."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIO = Path(__file__).parent.parent / "scenarios" / "pollution"
FORENSICS = [sys.executable, "-m", "forensics"]

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)


def _bundle(tmp_path: Path, *tests: str) -> Path:
    suite = tmp_path / "suite"
    shutil.copytree(SCENARIO, suite)
    _run(
        [
            *FORENSICS,
            "wrap",
            "--bundle",
            "b",
            "--",
            "python",
            "-m",
            "pytest",
            "-p",
            "no:randomly",
            "-q",
            "-n",
            "1",
            *tests,
        ],
        cwd=suite,
    )
    return suite


def test_names_the_polluter_and_the_printed_repro_crashes(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_a_fill.py", "test_b_more.py", "test_z_victim.py")
    proc = _run([*FORENSICS, "bisect", "b"], cwd=suite)
    assert proc.returncode == 0, proc.stderr
    assert "50 earlier test(s)" in proc.stdout
    polluters = proc.stdout.split("polluters:\n", 1)[1].split("repro:\n", 1)[0]
    assert polluters == "  test_a_fill.py::test_configure_codec\n"
    repro = proc.stdout.split("repro:\n", 1)[1].strip()
    assert "test_fill" not in repro and "test_more" not in repro
    again = subprocess.run(
        repro, shell=True, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 134
    assert "collected 2 items" in again.stdout
    assert "in test_decode" in again.stderr


def test_fails_on_its_own(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_b_more.py", "test_alone_fails.py")
    proc = _run([*FORENSICS, "bisect", "b", "--format", "json", "--repeat", "1"], cwd=suite)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["schema"] == "forensics.bisect/1"
    assert (data["outcome"], data["polluters"]) == ("fails-alone", [])
    assert data["verdict"] == "fails on its own — no polluter needed"
    again = subprocess.run(
        data["repro"], shell=True, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 134 and "collected 1 item" in again.stdout


def test_does_not_reproduce_in_one_process(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_b_more.py", "test_only_in_worker.py")
    proc = _run([*FORENSICS, "bisect", "b", "--repeat", "1", "-q"], cwd=suite)
    assert proc.returncode == 1
    assert "does not reproduce in one process" in proc.stdout
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["b", "--incident", "I9"], "no incident I9"),
        (["missing-bundle"], "missing-bundle"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    suite = _bundle(tmp_path, "test_alone_fails.py")
    proc = _run([*FORENSICS, "bisect", *args], cwd=suite)
    assert proc.returncode == 1
    assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
