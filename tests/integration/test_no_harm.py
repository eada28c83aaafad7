"""A wrapped suite behaves exactly as unwrapped, and only real failures become incidents.

The scenario suite (``tests/scenarios/crashy/no_harm``) runs with ``filterwarnings = error`` and
its tests inspect, crash and kill their own processes on purpose.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest
from forensics_testkit import PYTEST, WrapResult, run

pytestmark = pytest.mark.slow

SUITE = "test_children.py"


@pytest.fixture(scope="module")
def no_harm(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("no_harm", [*PYTEST, "-n", "2", "-q", "-rA"])


def _outcomes(output: str) -> dict[str, str]:
    """PASSED/FAILED lines of pytest's -rA summary."""
    found = {}
    for line in output.splitlines():
        word, _, rest = line.partition(" ")
        if word in ("PASSED", "FAILED", "ERROR") and "::" in rest:
            found[rest.split(" - ")[0].strip()] = word
    return found


def test_outcomes_are_those_of_the_unwrapped_run(no_harm: WrapResult) -> None:
    assert no_harm.unwrapped is not None
    plain = _outcomes(no_harm.unwrapped.stdout)
    assert plain and _outcomes(no_harm.stdout) == plain
    assert no_harm.returncode == no_harm.unwrapped.returncode == 1
    # filterwarnings = error: a warning from forensics would have stopped pytest at start-up.
    assert "PytestAssertRewriteWarning" not in no_harm.stdout + no_harm.stderr
    assert plain[f"{SUITE}::test_exec_child_holds_no_regular_file"] == "PASSED"
    assert plain[f"{SUITE}::test_fork_child_holds_nothing_of_the_agent"] == "PASSED"
    assert plain[f"{SUITE}::test_child_faulthandler_left_as_configured"] == "PASSED"


def test_no_incident_on_a_passing_test(no_harm: WrapResult) -> None:
    passed = {t for t, o in _outcomes(no_harm.stdout).items() if o == "PASSED"}
    blamed = {i["test"] for i in no_harm.incidents}
    assert not blamed & passed, [(i["cause"], i["summary"]) for i in no_harm.incidents]
    assert len(no_harm.incidents) == 2


def test_deaths_the_tests_caused_are_expected_not_incidents(no_harm: WrapResult) -> None:
    expected = {(d["test"].split("::")[1], d["signal"]) for d in no_harm.triage["expected_deaths"]}
    assert expected == {
        ("test_kills_its_own_child", "SIGKILL"),
        ("test_child_crashes_on_purpose", "SIGABRT"),
        ("test_child_faulthandler_left_as_configured", "SIGSEGV"),
    }
    assert "caused by the tests themselves" in no_harm.stderr


def test_a_failure_then_its_cleanup_kill_is_the_failure(no_harm: WrapResult) -> None:
    incident = no_harm.one(f"{SUITE}::test_fails_then_kills_its_child")
    assert incident["cause"] == "python-exception"
    assert "the service never answered" in incident["summary"]
    assert [s["cause"] for s in incident["secondary"]] == ["external-kill"]
    assert "SIGKILL" in incident["secondary"][0]["summary"]


def test_a_child_death_has_the_phase_of_its_time(no_harm: WrapResult) -> None:
    incident = no_harm.one(f"{SUITE}::test_helper_crashed_in_setup")
    assert (incident["cause"], incident["signal"], incident["phase"]) == (
        "native-crash",
        "SIGSEGV",
        "setup",
    )
    assert [s["cause"] for s in incident["secondary"]] == ["python-exception"]


def test_processes_out_of_reach_are_listed(no_harm: WrapResult) -> None:
    missing: list[dict[str, Any]] = no_harm.triage["not_covered"]
    assert len(missing) == 1 and " -I " in missing[0]["argv"]
    assert "isolated mode" in missing[0]["reason"]


@pytest.fixture(scope="module")
def hangs(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario(
        "hang_truth",
        [*PYTEST, "-n", "2", "-q"],
        unwrapped=False,
        hang_timeout=4,
    )


def test_busy_hang_is_in_python_not_in_a_library(hangs: WrapResult) -> None:
    incident = hangs.one("test_hangs.py::test_busy_in_python")
    assert incident["cause"] == "hang"
    assert incident["extra"]["hang"]["activity"] == "busy"
    assert "runaway recursion of recurse" in incident["summary"]
    assert incident["native_library"] is None
    main = incident["stacks"][0]
    assert main["pid"] == incident["pid"] and main["state"] == "running"


def test_blocked_hang_names_the_child_that_died_first(hangs: WrapResult) -> None:
    incident = hangs.one("test_hangs.py::test_waits_for_a_dead_child")
    assert incident["extra"]["hang"]["activity"] == "blocked"
    dead = incident["extra"]["hang"]["children_dead_before"]
    assert len(dead) == 1 and dead[0]["how"] == "exited with status 3"
    assert "exited with status 3" in incident["summary"]
    assert "test_waits_for_a_dead_child" in incident["summary"]


def test_text_report_shows_every_thread(hangs: WrapResult) -> None:
    proc = run(
        [sys.executable, "-m", "forensics", "report", str(hangs.bundle), "--format", "text"],
        hangs.cwd,
    )
    incident = hangs.one("test_hangs.py::test_busy_in_python")
    shown = [ln for ln in proc.stdout.splitlines() if ln.startswith("    stack pid")]
    total = sum(len(i["stacks"]) for i in hangs.incidents)
    assert len(shown) == total and len(incident["stacks"]) >= 2


@pytest.mark.parametrize(
    ("args", "stage", "error"),
    [
        (["--no-such-option"], "startup", "unrecognized arguments: --no-such-option"),
        (["missing_dir/"], "collection", "not found"),
    ],
)
def test_a_command_that_fails_before_any_test_says_so(
    wrap_scenario: Callable[..., WrapResult], args: list[str], stage: str, error: str
) -> None:
    result = wrap_scenario("no_harm", [*PYTEST, "-q", *args])
    assert result.unwrapped is not None
    assert result.returncode == result.unwrapped.returncode == 4
    early = result.triage["run"]["early_exit"]
    assert early is not None and early["exit_code"] == 4
    assert early["stage"] == stage and error in early["error"]
    assert "no test ran" in result.stderr
    assert "forensics: no incidents" not in result.stderr
