from __future__ import annotations

import os
from pathlib import Path

import pytest

from _managed import ManagedProcess

COUNTER = Path(__file__).parent / ".runs"


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller counted this run and exported the verdict
    runs = int(COUNTER.read_text()) + 1 if COUNTER.exists() else 1
    COUNTER.write_text(str(runs))
    os.environ["SCENARIO_HANG"] = "1" if runs % 3 == 0 else "0"


@pytest.fixture
def managed_server():
    with ManagedProcess(patient=os.environ.get("SCENARIO_HANG") == "1") as proc:
        yield proc
