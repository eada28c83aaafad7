"""`forensics stress` keeps and prints failure samples redacted, as reports are."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from forensics_testkit import clean_env

pytestmark = pytest.mark.slow

TOKEN = "QzStressTokenValueXy"
SUITE = textwrap.dedent(
    """
    import os

    def test_leaks():
        assert False, "redis://:Pw-in-url-991@cache " + os.environ["MY_API_TOKEN"]
    """
)

CONFTEST = "def pytest_addoption(parser):\n    parser.addoption('--password')\n"


def test_stress_history_and_output_hold_no_secret(tmp_path: Path) -> None:
    (tmp_path / "test_leak.py").write_text(SUITE)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    stress = ["stress", "--iterations", "1", "--parallel", "0"]
    pytest_argv = ["-m", "pytest", "-q", "-p", "no:cacheprovider", ".", "--password", "cmd-pw-5"]
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", *stress, "--", sys.executable, *pytest_argv],
        cwd=tmp_path,
        env=clean_env(MY_API_TOKEN=TOKEN),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "python-exception" in proc.stdout
    history = (tmp_path / ".forensics" / "stress.sqlite").read_bytes()
    for secret in (TOKEN, "Pw-in-url-991", "cmd-pw-5"):
        assert secret not in proc.stdout + proc.stderr, secret
        assert secret.encode() not in history, secret
    assert "<redacted:$MY_API_TOKEN>" in proc.stdout
