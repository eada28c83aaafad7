"""A command that cannot start: the shell's status, one line, nothing left behind."""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
from forensics_testkit import clean_env, run

from forensics.collect.cgroups import current_cgroup


def test_command_not_found_exits_127_like_a_shell(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    proc = run(
        [
            sys.executable,
            "-m",
            "forensics",
            "wrap",
            "--bundle",
            str(bundle),
            "--",
            "no-such-command-for-forensics",
        ],
        tmp_path,
        env=clean_env(),
    )
    assert proc.returncode == 127
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "cannot run 'no-such-command-for-forensics'" in proc.stderr
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["exit_status"] == 127 and manifest["ended_by"] == "not started"
    # The run's cgroup was made before the exec failed; it must not outlive the attempt.
    info = current_cgroup()
    if info is not None:
        assert not (info.dir / f"forensics-{manifest['run_id']}").exists()


def test_command_not_executable_exits_126(tmp_path: Path) -> None:
    script = tmp_path / "not_executable.py"
    script.write_text("print('never')\n")
    proc = run(
        [
            sys.executable,
            "-m",
            "forensics",
            "wrap",
            "--bundle",
            str(tmp_path / "b"),
            "--",
            str(script),
        ],
        tmp_path,
        env=clean_env(),
    )
    assert proc.returncode == 126
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("script") is None, reason="needs util-linux script for a tty")
def test_a_terminal_stdin_does_not_stop_the_command(tmp_path: Path) -> None:
    """In a background process group, reading the terminal would stop the command (SIGTTIN)."""
    wrap = shlex.join(
        [
            sys.executable,
            "-m",
            "forensics",
            "wrap",
            "--bundle",
            str(tmp_path / "b"),
            "--hang-timeout",
            "0",
            "--",
            sys.executable,
            "-c",
            "import sys; print('read', repr(sys.stdin.read()))",
        ]
    )
    proc = run(["script", "-qec", wrap, "/dev/null"], tmp_path, env=clean_env(), timeout=60)
    assert proc.returncode == 0
    assert "read ''" in proc.stdout
