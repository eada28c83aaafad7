"""`forensics wrap` over real pytest-xdist runs: every worker death captured and attributed.

One run of tests/scenarios/crashy/xdist_mix (-n 4, --dist load) holds six deaths of six kinds;
one run of crashy/loadscope (-n 8, --dist loadscope) holds one.  Each run happens once per module
and the tests below assert on its triage, its bundle and its printed commands.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import PYTEST, WrapResult, clean_env, run, shell_status

pytestmark = pytest.mark.slow

SEGV = "test_native.py::test_segv"
ABORT = "test_native.py::test_abort"
EXTKILL = "test_extkill.py::test_killed_by_helper"
SPAWN = "test_mp.py::test_spawn_child_segv"
FORK = "test_mp.py::test_fork_child_segv"
TEARDOWN = "test_fixture.py::test_teardown_crash"
HEALTHY = [f"test_healthy.py::test_healthy[{n}]" for n in range(8)]

# test -> (cause, signal, phase, a frame the stack must hold, exit status of the dead process)
EXPECTED = {
    SEGV: ("native-crash", "SIGSEGV", "call", "test_segv", 139),
    ABORT: ("native-crash", "SIGABRT", "call", "test_abort", 134),
    EXTKILL: ("external-kill", "SIGKILL", "call", None, 137),
    SPAWN: ("native-crash", "SIGSEGV", "call", "child_segv", 139),
    FORK: ("native-crash", "SIGSEGV", "call", "child_segv", 139),
    TEARDOWN: ("native-crash", "SIGSEGV", "teardown", "crashes_in_teardown", 139),
}


@pytest.fixture(scope="module")
def mix(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    result = wrap_scenario("xdist_mix", [*PYTEST, "-n", "4", "--dist", "load"])
    # Read now: the repro tests re-run these tests in the same directory.
    result.extra["pids"] = {p.name: int(p.read_text()) for p in (result.cwd / "pids").iterdir()}
    return result


@pytest.fixture(scope="module")
def scoped(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("loadscope", [*PYTEST, "-n", "8", "--dist", "loadscope"])


def _pid_file(result: WrapResult, name: str) -> int:
    pid: int = result.extra["pids"][name]
    return pid


def _frame_names(incident: dict[str, Any]) -> list[str]:
    return [f["name"] for stack in incident["stacks"][:1] for f in stack["frames"]]


# --- exit status -------------------------------------------------------------------------------


def test_mix_exit_status_is_the_unwrapped_commands(mix: WrapResult) -> None:
    assert mix.unwrapped is not None
    assert mix.returncode == shell_status(mix.unwrapped.returncode) == 1, mix.stderr[-2000:]
    assert mix.triage["run"]["exit_code"] == 1


def test_loadscope_exit_status_is_the_unwrapped_commands(scoped: WrapResult) -> None:
    assert scoped.unwrapped is not None
    assert scoped.returncode == shell_status(scoped.unwrapped.returncode) == 1


# --- attribution -------------------------------------------------------------------------------


def test_mix_one_incident_per_death_with_cause_signal_and_phase(mix: WrapResult) -> None:
    got = {i["test"]: (i["cause"], i["signal"], i["phase"]) for i in mix.incidents}
    assert got == {test: exp[:3] for test, exp in EXPECTED.items()}
    assert len(mix.incidents) == len(EXPECTED)


@pytest.mark.parametrize("nodeid", sorted(EXPECTED))
def test_mix_stack_and_exit_status_of_each_death(mix: WrapResult, nodeid: str) -> None:
    incident = mix.one(nodeid)
    _cause, _signal, _phase, frame, status = EXPECTED[nodeid]
    assert incident["exit_code"] == status
    assert isinstance(incident["pid"], int)
    if frame is None:
        # SIGKILL leaves no fault dump: there is no stack to show, and none is invented.
        assert incident["stacks"] == []
    else:
        assert frame in _frame_names(incident), incident["summary"]
        assert incident["confidence"] == "high"


def test_mix_worker_deaths_name_the_worker(mix: WrapResult) -> None:
    for nodeid in (SEGV, ABORT, EXTKILL, TEARDOWN):
        incident = mix.one(nodeid)
        assert re.fullmatch(r"gw\d+", incident["worker"] or ""), incident
        assert incident["summary"].startswith(f"worker {incident['worker']} ")
        assert nodeid in incident["summary"]


def test_mix_child_process_deaths_blame_the_test_that_started_them(mix: WrapResult) -> None:
    for nodeid, pidfile in ((SPAWN, "spawn_child"), (FORK, "fork_child")):
        incident = mix.one(nodeid)
        assert incident["pid"] == _pid_file(mix, pidfile)
        assert incident["extra"].get("in_child_process") is True
        # The test failed because its child crashed: a consequence, not a second incident.
        assert [s["cause"] for s in incident["secondary"]] == ["python-exception"]
        assert "-11" in incident["secondary"][0]["summary"]


def test_mix_healthy_tests_are_never_blamed(mix: WrapResult) -> None:
    blamed = {i["test"] for i in mix.incidents}
    assert not blamed & set(HEALTHY)
    # One outcome per test: the eight healthy ones passed, each of the six crashed ones failed
    # (pytest itself counts the teardown crash twice: its call passed, then the worker died).
    assert mix.triage["run"]["tests"] == {"passed": 8, "failed": 6, "error": 0, "skipped": 0}


def test_mix_prior_tests_are_earlier_tests_of_the_same_process(mix: WrapResult) -> None:
    # For a worker's own death, what the worker ran before; for a death of a process a test
    # started, what the worker ran before that test (not the tests it ran after it).
    for incident in mix.incidents:
        ran = next(
            [t["test"] for t in tl["tests"]]
            for tl in mix.triage["timelines"]
            if incident["test"] in [t["test"] for t in tl["tests"]]
        )
        assert incident["prior_tests"] == ran[: ran.index(incident["test"])], incident["summary"]


def test_mix_summary_has_one_line_per_incident_and_the_report_command(mix: WrapResult) -> None:
    lines = mix.stderr.rstrip("\n").splitlines()
    incident_lines = [ln for ln in lines if re.match(r"\s+I\d+ \[", ln)]
    assert len(incident_lines) == len(EXPECTED)
    assert "forensics report" in lines[-1]


def test_printed_report_command_works_when_pasted(mix: WrapResult) -> None:
    last = mix.stderr.rstrip("\n").splitlines()[-1]
    command = last.split("next: ", 1)[1]
    assert command.startswith("forensics report ")
    env_path = Path(sys.executable).parent
    proc = run(command, mix.cwd, shell=True, env=_env_with_path(env_path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def _env_with_path(bindir: Path) -> dict[str, str]:
    env = clean_env()
    env["PATH"] = f"{bindir}:{env.get('PATH', '')}"
    return env


@pytest.mark.parametrize(
    ("nodeid", "expect"),
    [(SEGV, 139), (TEARDOWN, 139), (ABORT, 134), (EXTKILL, 137), (FORK, "failed")],
)
def test_repro_reproduces_the_crash(mix: WrapResult, nodeid: str, expect: int | str) -> None:
    incident = mix.one(nodeid)
    repro = incident["repro"]
    assert repro, incident
    # The repro runs in a fresh copy of the suite, in the directory the run started in.
    cwd = Path(mix.triage["run"]["cwd"])
    proc = run(repro, cwd, shell=True, timeout=120)
    if expect == "failed":
        assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert f"FAILED {nodeid}" in proc.stdout
    else:
        assert shell_status(proc.returncode) == expect, proc.stdout[-2000:] + proc.stderr[-2000:]


# --- the agent in processes the run starts -------------------------------------------------------


def test_fork_child_gets_back_what_it_would_have_without_the_agent(mix: WrapResult) -> None:
    child = _pid_file(mix, "fork_child")
    # No file of the agent's in a test's child: its fatal error goes to its own stderr (as
    # pytest's faulthandler set it), which reached the terminal and output.log.
    assert not (mix.bundle / "faults" / f"{child}.log").exists()
    assert "child_segv" in (mix.bundle / "output.log").read_text(errors="replace")
    start = (mix.bundle / "workers" / f"{child}.jsonl").read_text().splitlines()[0]
    assert '"how":"fork"' in start
    parent = int(re.search(r'"ppid":(\d+)', start).group(1))  # type: ignore[union-attr]
    parent_faults = mix.bundle / "faults" / f"{parent}.log"
    assert parent_faults.is_file()
    # (The worker may well crash later in a test of its own; the child's crash is not there.)
    assert "child_segv" not in parent_faults.read_text(errors="replace")
    # pytest captured that stderr for the failing test's report; the agent kept the block, and
    # the triage matched it to the child that died of that signal during that test.
    incident = mix.one(FORK)
    assert incident["pid"] == child
    assert any("captured stderr of" in e["source"] for e in incident["evidence"])
    assert "child_segv" in _frame_names(incident)


def test_spawn_child_runs_the_agent(mix: WrapResult) -> None:
    child = _pid_file(mix, "spawn_child")
    assert not (mix.bundle / "faults" / f"{child}.log").exists()
    start = (mix.bundle / "workers" / f"{child}.jsonl").read_text().splitlines()[0]
    assert '"how":"exec"' in start
    # The test that started it follows from the process tree and the times, not from the
    # environment (the agent sets no variable around tests).
    incident = mix.one(SPAWN)
    assert incident["pid"] == child and incident["extra"]["in_child_process"] is True
    assert "child_segv" in _frame_names(incident)


# --- loadscope, -n 8 -----------------------------------------------------------------------------


def test_loadscope_crash_is_attributed(scoped: WrapResult) -> None:
    crash = "test_scoped.py::TestCrashy::test_crash"
    assert {i["test"] for i in scoped.incidents} == {crash, CHILD_CRASH}
    incident = scoped.one(crash)
    assert (incident["cause"], incident["signal"], incident["phase"]) == (
        "native-crash",
        "SIGSEGV",
        "call",
    )
    assert "test_crash" in _frame_names(incident)
    # loadscope keeps a class on one worker: the class's earlier tests ran before it there.
    assert incident["prior_tests"] == [
        "test_scoped.py::TestCrashy::test_first",
        "test_scoped.py::TestCrashy::test_second",
    ]
    assert scoped.triage["run"]["tests"]["passed"] == 23
    assert scoped.triage["run"]["tests"]["failed"] == 2


CHILD_CRASH = "test_child.py::test_fork_child_crash"


def test_loadscope_child_crash_suspects_only_earlier_tests(scoped: WrapResult) -> None:
    # The worker ran test_after_child after the test whose child crashed: not a suspect.
    incident = scoped.one(CHILD_CRASH)
    assert (incident["cause"], incident["signal"]) == ("native-crash", "SIGSEGV")
    assert incident["extra"].get("in_child_process") is True
    ran = next(
        [t["test"] for t in tl["tests"]]
        for tl in scoped.triage["timelines"]
        if CHILD_CRASH in [t["test"] for t in tl["tests"]]
    )
    assert ran.index("test_child.py::test_after_child") > ran.index(CHILD_CRASH)
    assert incident["prior_tests"] == ran[: ran.index(CHILD_CRASH)]
    assert "test_after_child" not in incident["repro"]
    proc = run(incident["repro"], scoped.cwd, shell=True, timeout=120)
    assert proc.returncode == 1 and f"FAILED {CHILD_CRASH}" in proc.stdout, proc.stdout[-2000:]
