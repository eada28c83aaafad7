"""Seed 000's real case, run for real: a runaway recursion ended by pytest-timeout's thread
method under `-n 2`.  The bundle has the evidence to rule a native crash out; the console log of
the very same run has the header only, so it may say "possible" and no more."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from forensics_testkit import PYTEST, WrapResult

pytestmark = pytest.mark.slow

TEST = "test_runaway.py::test_runaway_recursion"
COMMAND = [*PYTEST, "-n", "2", "-p", "timeout", "--timeout", "5", "--timeout-method=thread"]


@pytest.fixture(scope="module")
def run(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("timeout_thread", COMMAND, unwrapped=False)


def _rows(incident: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["cause"]: row for row in incident["extra"]["differential"]}


def test_bundle_rules_out_a_native_crash(run: WrapResult) -> None:
    assert run.returncode == 1, run.stderr
    (incident,) = run.by_test(TEST)
    assert (incident["cause"], incident["confidence"]) == ("hang", "high")
    assert incident["signal"] is None and incident["exit_code"] == 1
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "most likely"
    assert "the agent dumped the stacks just before the timer fired" in rows["hang"]["for"]
    native = rows["native-crash"]
    assert native["verdict"] == "ruled out"
    assert "no fatal signal: it exited with status 1" in native["against"]
    assert any("agent's stack dump" in x for x in native["against"])
    assert all(
        rows[c]["verdict"] == "ruled out" for c in ("oom-kill", "external-kill", "unexpected-exit")
    )


def test_console_log_of_the_same_run_says_possible_not_crash(run: WrapResult) -> None:
    log = run.bundle / "output.log"
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "analyze", str(log), "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    triage = json.loads(proc.stdout)
    (incident,) = [i for i in triage["incidents"] if i["test"] == TEST]
    # The header says thread method, 5 s; nothing dates the worker's silence.
    assert (incident["cause"], incident["confidence"]) == ("hang", "low")
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "possible"
    assert rows["native-crash"]["verdict"] == "not excluded"


def test_markdown_says_why_not_a_native_crash(run: WrapResult) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "report", str(run.bundle), "--format", "markdown"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "### Why not something else" in proc.stdout
    assert "- **native-crash**: ruled out - no fatal signal: it exited with status 1" in proc.stdout
