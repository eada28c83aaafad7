"""A CI service password that is a common word does not break test ids or repro commands."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from forensics_testkit import clean_env

pytestmark = pytest.mark.slow

SUITE = textwrap.dedent(
    """
    import ctypes, os

    def test_first():
        assert False, "redis://:S3cr3t-pw-77@cache:6379 sent Cookie: sid=abc123def"

    def test_connect():
        ctypes.string_at(8)
    """
)


def test_postgres_password_postgres_keeps_ids_and_repro(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_postgres.py").write_text(SUITE)
    env = clean_env(POSTGRES_PASSWORD="postgres", POSTGRES_USER="postgres")
    env.pop("GITHUB_STEP_SUMMARY", None)
    bundle = tmp_path / "bundle"
    pytest_argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "1"]
    subprocess.run(
        [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--", *pytest_argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=180,
        check=False,
    )
    report = subprocess.run(
        [sys.executable, "-m", "forensics", "report", str(bundle), "--format", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "S3cr3t-pw-77" not in report.stdout and "sid=abc123def" not in report.stdout
    triage = json.loads(report.stdout)
    crash = next(i for i in triage["incidents"] if i["cause"] == "native-crash")
    assert crash["test"] == "tests/test_postgres.py::test_connect"
    assert "tests/test_postgres.py::test_first" in crash["repro"]
    note = next(n for n in triage["notes"] if n.startswith("redacted: "))
    assert "--no-redact" in note
    # The printed repro still runs, through a shell as a user pastes it (a redacted home is
    # `~/`, which the shell expands): it reaches the same crash.
    again = subprocess.run(
        crash["repro"], shell=True, cwd=tmp_path, env=env, capture_output=True, timeout=120
    )
    assert again.returncode in (-11, 139), again.stdout[-2000:]
