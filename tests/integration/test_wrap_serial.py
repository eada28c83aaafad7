"""`forensics wrap` where the crash kills the command itself: pytest without xdist, a plain
script, and a crash while collecting (under xdist every worker dies collecting)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from forensics_testkit import PYTEST, WrapResult, run, shell_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def serial(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("noxdist", [*PYTEST, "-p", "no:xdist"])


@pytest.fixture(scope="module")
def script(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("script", [sys.executable, "segv.py"])


@pytest.fixture(scope="module")
def collect(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("collect_crash", [*PYTEST, "-n", "2"])


def test_serial_exit_status_is_139_like_the_unwrapped_command(serial: WrapResult) -> None:
    assert serial.unwrapped is not None
    assert shell_status(serial.unwrapped.returncode) == 139
    assert serial.returncode == 139
    assert serial.triage["run"]["exit_code"] == 139


def test_serial_crash_is_attributed(serial: WrapResult) -> None:
    assert len(serial.incidents) == 1
    incident = serial.one("test_serial.py::test_segv")
    assert (incident["cause"], incident["signal"], incident["phase"], incident["worker"]) == (
        "native-crash",
        "SIGSEGV",
        "call",
        None,
    )
    assert incident["prior_tests"] == ["test_serial.py::test_before"]
    assert "test_segv" in [f["name"] for f in incident["stacks"][0]["frames"]]
    assert incident["summary"].startswith("the pytest process died of SIGSEGV")


def test_serial_counts_only_what_finished(serial: WrapResult) -> None:
    # test_before passed; test_segv never finished (its process died in its call phase) and
    # test_after never ran: only one test passed.
    assert serial.triage["run"]["tests"]["passed"] == 1


def test_serial_repro_reproduces(serial: WrapResult) -> None:
    repro = serial.one("test_serial.py::test_segv")["repro"]
    proc = run(repro, serial.cwd, shell=True, timeout=120)
    assert shell_status(proc.returncode) == 139, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_script_exit_status_is_139_like_the_unwrapped_command(script: WrapResult) -> None:
    assert script.unwrapped is not None
    assert shell_status(script.unwrapped.returncode) == 139
    assert script.returncode == 139


def test_script_crash_is_attributed(script: WrapResult) -> None:
    assert len(script.incidents) == 1
    incident = script.incidents[0]
    assert (incident["cause"], incident["signal"], incident["test"]) == (
        "native-crash",
        "SIGSEGV",
        None,
    )
    # The crashing thread's stack: native frames (when a core was read) come first, then the
    # Python frames that called in.
    frames = incident["stacks"][0]["frames"]
    names = [f["name"] for f in frames if not f["native"]]
    assert names[:3] == ["string_at", "crash_here", "<module>"]
    first_python = next(i for i, f in enumerate(frames) if not f["native"])
    assert all(f["native"] for f in frames[:first_python])


def test_script_repro_reproduces(script: WrapResult) -> None:
    repro = script.incidents[0]["repro"]
    assert repro
    proc = run(repro, script.cwd, shell=True, timeout=60)
    assert shell_status(proc.returncode) == 139, f"{repro!r}: {proc.stderr[-2000:]}"


def test_collection_crash_exit_status_is_the_unwrapped_commands(collect: WrapResult) -> None:
    assert collect.unwrapped is not None
    assert collect.returncode == shell_status(collect.unwrapped.returncode)


def test_collection_crash_blames_the_module_being_collected(collect: WrapResult) -> None:
    assert collect.incidents
    for incident in collect.incidents:
        assert (incident["cause"], incident["signal"], incident["phase"], incident["test"]) == (
            "native-crash",
            "SIGSEGV",
            "collect",
            "test_boom.py",
        )
        assert "<module>" in [f["name"] for f in incident["stacks"][0]["frames"]]
    # Every replacement worker died the same way: the later ones say they repeat the first.
    assert all(i["repeat_of"] == "I1" for i in collect.incidents[1:])


def test_collection_crash_repro_reproduces(collect: WrapResult) -> None:
    proc = run(collect.incidents[0]["repro"], collect.cwd, shell=True, timeout=120)
    assert shell_status(proc.returncode) == 139, proc.stdout[-2000:] + proc.stderr[-2000:]
