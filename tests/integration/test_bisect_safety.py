"""`forensics bisect` on a stranger's bundle: it runs only test ids, with our interpreter, here."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from forensics_testkit import clean_env

SCENARIO = Path(__file__).parent.parent / "scenarios" / "pollution"
FORENSICS = [sys.executable, "-m", "forensics"]

pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=clean_env(**env),
    )


def _bundle(tmp_path: Path, *tests: str) -> Path:
    suite = tmp_path / "suite"
    shutil.copytree(SCENARIO, suite)
    pytest_args = ["-p", "no:randomly", "-q", "-n", "1", *tests]
    _run(
        [*FORENSICS, "wrap", "--bundle", "b", "--", sys.executable, "-m", "pytest", *pytest_args],
        suite,
    )
    return suite


def _tamper(bundle: Path, edit: dict[str, object], insert_test: str | None = None) -> None:
    """Rewrite every breadcrumb journal of *bundle* as a hostile bundle's author would."""
    for journal in (bundle / "workers").glob("*.jsonl"):
        out = []
        for line in journal.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("kind") in ("process-start", "session-start"):
                rec.update(edit)
            if insert_test and rec.get("kind") == "test-start" and "victim" in rec["nodeid"]:
                out.append(json.dumps({**rec, "nodeid": insert_test, "t": rec["t"] - 0.5}))
                out.append(json.dumps({**rec, "kind": "test-end", "nodeid": insert_test}))
            out.append(json.dumps(rec))
        journal.write_text("\n".join(out) + "\n")


def test_the_bundles_interpreter_and_directory_are_not_used(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_a_fill.py", "test_z_victim.py")
    marker = tmp_path / "evil-ran"
    evil = tmp_path / "evil.sh"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    evil.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _tamper(
        suite / "b", {"executable": str(evil), "rootdir": str(elsewhere), "cwd": str(elsewhere)}
    )
    proc = _run([*FORENSICS, "bisect", "b", "--repeat", "1"], cwd=suite)
    assert not marker.exists()
    assert proc.returncode == 0, proc.stderr
    # What it will run is shown before it runs: this interpreter, this checkout, ids after --.
    plan = proc.stderr.splitlines()[:2]
    assert f"in {suite}" in plan[0]
    assert plan[1].strip().startswith(f"cd {suite} && {_shown(sys.executable)} -m pytest")
    assert " -- " in plan[1]
    assert "test_a_fill.py::test_configure_codec" in proc.stdout


def test_an_option_posing_as_a_test_id_is_refused(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_a_fill.py", "test_z_victim.py")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "important.txt").write_text("keep\n")
    _tamper(suite / "b", {}, insert_test=f"--basetemp={victim}")
    proc = _run([*FORENSICS, "bisect", "b", "--repeat", "1"], cwd=suite)
    assert (victim / "important.txt").read_text() == "keep\n"
    assert proc.returncode == 1
    assert "not a test id" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_dry_run_prints_the_command_and_runs_nothing(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_a_fill.py", "test_z_victim.py")
    shutil.rmtree(suite / "__pycache__", ignore_errors=True)
    proc = _run([*FORENSICS, "bisect", "b", "--dry-run", "--python", sys.executable], cwd=suite)
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout.strip()
    assert command.startswith(f"cd {suite} && {_shown(sys.executable)} -m pytest")
    assert command.endswith("-- " + " ".join(_prior(command)) + " test_z_victim.py::test_decode")
    assert not (suite / "__pycache__").exists()  # no pytest ran
    # The printed command is the one bisect runs: fed back, it reproduces the crash.
    again = subprocess.run(
        command, shell=True, capture_output=True, text=True, timeout=120, check=False
    )
    assert again.returncode == 134, again.stdout[-2000:]


def _prior(command: str) -> list[str]:
    return command.split(" -- ", 1)[1].split()[:-1]


def test_missing_python_is_a_usage_error(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_alone_fails.py")
    proc = _run([*FORENSICS, "bisect", "b", "--python", "no-such-python-3"], cwd=suite)
    assert proc.returncode == 2
    assert "--python" in proc.stderr and "Traceback" not in proc.stderr


def test_bisect_output_is_redacted_but_keeps_test_ids(tmp_path: Path) -> None:
    suite = _bundle(tmp_path, "test_a_fill.py", "test_z_victim.py")
    # A secret that the output carries (in the checkout's path).
    proc = _run(
        [*FORENSICS, "bisect", "b", "--repeat", "1", "--format", "json"],
        cwd=suite,
        SESSION_SECRET=str(tmp_path.name),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["polluters"] == ["test_a_fill.py::test_configure_codec"]
    assert tmp_path.name not in proc.stdout + proc.stderr
    assert "<redacted:$SESSION_SECRET>" in data["repro"]
    assert data["victim"] == "test_z_victim.py::test_decode"


def _shown(path: str) -> str:
    """A path as the redacted output prints it: the home directory is `~`."""
    home = str(Path.home())
    return "~" + path[len(home) :] if path.startswith(home + "/") else path
