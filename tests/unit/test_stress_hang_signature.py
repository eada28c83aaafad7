"""A hang's stress signature is where it is stuck, the same in every run of that hang."""

from __future__ import annotations

from forensics.model import Frame, Incident, Stack
from forensics.stress.signatures import hang_frames, signature_of

PY = "/home/u/.pyenv/versions/3.11.7/lib/python3.11"
VENV = "/home/u/venv/lib/python3.11/site-packages"


def _teardown_hang(run: str, pid: int, thread: str, line: int) -> Incident:
    """A worker stuck in a fixture's teardown, as py-spy reports it from run directory *run*."""
    main = [
        Frame("wait4", None, None, native=True),
        Frame("Popen._try_wait", f"{PY}/subprocess.py", 2004 + line),
        Frame("Popen._wait", f"{PY}/subprocess.py", 2046),
        Frame("Popen.wait", f"{PY}/subprocess.py", 1264),
        Frame("ManagedProcess.__exit__", f"{run}/tests/utils/managed.py", 31 + line),
        Frame("managed_server", f"{run}/tests/conftest.py", 23),
        Frame("_teardown_yield_fixture", f"{VENV}/_pytest/fixtures.py", 1083),
        Frame("pytest_runtest_teardown", f"{VENV}/_pytest/runner.py", 199),
        Frame("WorkerInteractor.run_one_test", f"{VENV}/xdist/remote.py", 227),
    ]
    reader = [
        Frame("read", None, None, native=True),
        Frame("Popen2IO.read", f"{VENV}/execnet/gateway_base.py", 534),
    ]
    child = [Frame("<module>", "<string>", 4)]
    return Incident(
        id="I1",
        cause="hang",
        confidence="high",
        summary=f"worker gw{pid % 4} made no progress for 3.0{line}s",
        pid=pid,
        test="tests/test_server.py::test_uses_server",
        phase="teardown",
        signature="hang tests/test_server.py::test_uses_server",
        stacks=[
            Stack(pid, f"{pid} {thread} (idle)", main, "py-spy"),
            Stack(pid, f"{pid + 2} (idle)", reader, "py-spy"),
            Stack(pid + 13, f"{pid + 13} MainThread (idle)", child, "py-spy"),
        ],
    )


EXPECTED = (
    "hang at Popen._try_wait (subprocess.py) < Popen._wait (subprocess.py) < "
    "Popen.wait (subprocess.py) < ManagedProcess.__exit__ (tests/utils/managed.py) < "
    "managed_server (tests/conftest.py)"
)


def test_two_runs_of_one_hang_have_one_signature() -> None:
    a = _teardown_hang("/tmp/pytest-of-u/pytest-3/suite0", 4242, "MainThread", 0)
    b = _teardown_hang("/home/u/work/suite", 977, "MainThread", 7)
    # Different directories, pids, workers, lines, durations, the same frames:
    assert signature_of(a, "/tmp/pytest-of-u/pytest-3/suite0") == EXPECTED
    assert signature_of(b, "/home/u/work/suite") == EXPECTED


def test_the_test_thread_is_found_without_its_name() -> None:
    # faulthandler's fallback labels threads by address only.
    hang = _teardown_hang("/w", 5, "Thread 0x00007f1ddb1e5b80", 0)
    assert signature_of(hang, "/w") == EXPECTED
    assert "execnet" not in EXPECTED and "<module>" not in EXPECTED


def test_a_hang_elsewhere_in_the_same_test_is_another_signature() -> None:
    hang = _teardown_hang("/w", 5, "MainThread", 0)
    hang.stacks[0].frames[4:6] = [Frame("test_uses_server", "/w/tests/test_server.py", 9)]
    assert signature_of(hang, "/w") == (
        "hang at Popen._try_wait (subprocess.py) < Popen._wait (subprocess.py) < "
        "Popen.wait (subprocess.py) < test_uses_server (tests/test_server.py)"
    )


def test_a_library_wait_keeps_the_caller_that_names_it() -> None:
    hang = _teardown_hang("/w", 5, "MainThread", 0)
    hang.stacks[0].frames[1:6] = [
        Frame("wait", f"{PY}/threading.py", 327),
        Frame("Future.result", f"{PY}/concurrent/futures/_base.py", 451),
        Frame("Executor.shutdown", f"{VENV}/loky/process_executor.py", 1300),
        Frame("teardown_method", "/w/tests/_executor_mixin.py", 90),
    ]
    assert hang_frames(hang, "/w") == (
        "wait (threading.py) < Future.result (concurrent/futures/_base.py) < "
        "Executor.shutdown (loky/process_executor.py) < teardown_method (tests/_executor_mixin.py)"
    )


def test_without_stacks_the_triage_signature_stays() -> None:
    hang = _teardown_hang("/w", 5, "MainThread", 0)
    hang.stacks = []
    assert signature_of(hang, "/w") == "hang tests/test_server.py::test_uses_server"
    crash = Incident("I2", "native-crash", "high", "worker died", signature="native-crash t")
    assert signature_of(crash, "/w") == "native-crash t"
