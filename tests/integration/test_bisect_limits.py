"""bisect's trials run under `wrap` with the user's limits: a hung trial ends after
--hang-timeout, not after --trial-timeout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from forensics.bisect.target import Target
from forensics.bisect.trial import run_trial
from forensics.limits import RunLimits

pytestmark = pytest.mark.slow

SUITE = "import time\n\ndef test_first():\n    pass\n\ndef test_stuck():\n    time.sleep(600)\n"


def test_a_hung_trial_ends_after_the_hang_timeout(tmp_path: Path) -> None:
    (tmp_path / "test_h.py").write_text(SUITE)
    target = Target(
        incident="I1",
        cause="hang",
        victim="test_h.py::test_stuck",
        prior=("test_h.py::test_first",),
        python=sys.executable,
        rootdir=str(tmp_path),
        xdist=False,
    )
    result = run_trial(target, target.prior, timeout=120, limits=RunLimits(hang_timeout=2))
    assert (result.reproduced, result.how) == (True, "hung")
    assert result.seconds < 60, result


def test_bad_limits_are_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "bisect", str(tmp_path), "--timeout", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--timeout must be >= 0" in proc.stderr and "Traceback" not in proc.stderr
