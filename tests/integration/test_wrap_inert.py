"""The pytest plugin is installed (entry point) but inert unless a run is supervised."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from forensics_testkit import PYTEST, clean_env, copy_scenario, run

pytestmark = pytest.mark.slow


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


def _outcomes(stdout: str) -> tuple[list[str], str]:
    results = sorted(re.findall(r"^(PASSED|FAILED) (\S+)", stdout, re.M))
    summary = stdout.strip().splitlines()[-1]
    return [" ".join(r) for r in results], re.sub(r" in [\d.]+s.*", "", summary)


def test_plain_pytest_with_plugin_writes_nothing_and_behaves_the_same(tmp_path: Path) -> None:
    env = clean_env()
    assert not [k for k in env if k.startswith("FORENSICS_")]
    with_plugin = copy_scenario("inert", tmp_path / "with")
    without = copy_scenario("inert", tmp_path / "without")
    before = _tree(with_plugin)
    on = run([*PYTEST, "-p", "no:xdist", "-rA"], with_plugin, env=env, timeout=120)
    off = run(
        [*PYTEST, "-p", "no:xdist", "-rA", "-p", "no:forensics"], without, env=env, timeout=120
    )
    # The plugin really was loaded in the first run, and really was not in the second.
    assert "forensics-plugin-loaded: True" in on.stdout
    assert "forensics-plugin-loaded: False" in off.stdout
    assert on.returncode == off.returncode == 1
    assert _outcomes(on.stdout) == _outcomes(off.stdout)
    assert _outcomes(on.stdout)[1].endswith("1 failed, 2 passed")
    assert _tree(with_plugin) == before
    assert not list(tmp_path.glob("**/forensics-*"))
    assert not list(tmp_path.glob("**/faults"))
