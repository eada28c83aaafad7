"""README command 1 must work on a fresh machine: what it installs brings what the demo runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def test_command_1_installs_pytest_and_xdist_for_the_demo() -> None:
    tomllib = pytest.importorskip("tomllib")
    readme = (ROOT / "README.md").read_text()
    line = next(ln for ln in readme.splitlines() if "forensics wrap --bundle demo-bundle" in ln)
    extra = re.search(r"pip install '\.\[(\w+)\]' && ", line)
    assert extra is not None, line  # a bare `pip install .` leaves pytest out (issue 11)
    assert "python -m pytest -n" in line
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ;]", req)[0] for req in project["optional-dependencies"][extra[1]]}
    assert {"pytest", "pytest-xdist"} <= names
