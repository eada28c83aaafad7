"""INTERNALERROR in the xdist controller, made deterministic by a conftest hook that raises what
pytest-xdist#714 raises (KeyError naming a WorkerController)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from forensics_testkit import PYTEST, WrapResult, shell_status

pytestmark = pytest.mark.slow

XDIST_714 = "pytest-dev/pytest-xdist#714"


@pytest.fixture(scope="module")
def after_crash(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("ie_crash", [*PYTEST, "-n", "2"])


@pytest.fixture(scope="module")
def alone(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("ie_nocrash", [*PYTEST, "-n", "3"])


@pytest.mark.parametrize("name", ["after_crash", "alone"])
def test_exit_status_3_like_the_unwrapped_command(
    name: str, request: pytest.FixtureRequest
) -> None:
    result: WrapResult = request.getfixturevalue(name)
    assert result.unwrapped is not None
    assert "INTERNALERROR> KeyError" in result.unwrapped.stdout + result.unwrapped.stderr
    assert shell_status(result.unwrapped.returncode) == 3
    assert result.returncode == 3
    assert result.triage["run"]["exit_code"] == 3


def test_crash_stays_primary_and_internalerror_is_secondary(after_crash: WrapResult) -> None:
    assert [i["cause"] for i in after_crash.incidents] == ["native-crash"]
    incident = after_crash.one("test_ie.py::test_segv")
    assert (incident["signal"], incident["phase"]) == ("SIGSEGV", "call")
    assert [(s["cause"], s["ref"]) for s in incident["secondary"]] == [
        ("xdist-internal", XDIST_714)
    ]
    assert f"<WorkerController {incident['worker']}>" in incident["secondary"][0]["summary"]


def test_crashed_test_is_not_counted_as_passed(after_crash: WrapResult) -> None:
    # pytest says "1 passed": test_fine.  test_segv died in its call phase.
    assert after_crash.triage["run"]["tests"]["passed"] == 1


def test_internalerror_without_crash_is_primary(alone: WrapResult) -> None:
    assert len(alone.incidents) == 1
    incident = alone.incidents[0]
    assert incident["cause"] == "xdist-internal"
    assert incident["extra"].get("ref") == XDIST_714
    assert "KeyError" in incident["summary"] and "WorkerController gw" in incident["summary"]
    assert incident["test"] is None and incident["signal"] is None
