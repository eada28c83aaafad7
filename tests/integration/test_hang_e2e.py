"""Hangs end to end: real stalled xdist workers, real Ctrl-C, real py-spy, ptrace denial."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import clean_env, report_json

from forensics.collect.pyspy import find_py_spy

pytestmark = pytest.mark.slow

# The deadlock is the one test_unprivileged.py runs as nobody; the other hangs are root's.
DEADLOCK = Path(__file__).parent.parent / "scenarios" / "deadlock" / "test_deadlock.py"
HANGS = DEADLOCK.read_text() + textwrap.dedent(
    """

    import ctypes, subprocess, sys

    def test_native_pause():
        ctypes.CDLL(None).pause()

    GRANDCHILD = "import time\\ndef stuck_grandchild():\\n    time.sleep(600)\\nstuck_grandchild()"

    def test_grandchild():
        code = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {GRANDCHILD!r}])"
        subprocess.run([sys.executable, "-c", code])
    """
)


def _wrap(tmp: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 150) -> Any:
    bundle = tmp / "bundle"
    cmd = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), *args]
    proc = subprocess.run(
        cmd, cwd=tmp, capture_output=True, text=True, timeout=timeout, env=env or clean_env()
    )
    return proc, bundle


def _pytest(*args: str) -> list[str]:
    return ["--", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def _names(incident: dict[str, Any], *, native: bool | None = None) -> set[str]:
    return {
        frame["name"]
        for stack in incident["stacks"]
        for frame in stack["frames"]
        if native is None or frame["native"] == native
    }


@pytest.fixture(scope="module")
def hung_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], float]:
    tmp = tmp_path_factory.mktemp("hangs")
    (tmp / "test_hangs.py").write_text(HANGS)
    started = time.monotonic()
    proc, bundle = _wrap(tmp, "--hang-timeout", "4", *_pytest("-n", "2", "test_hangs.py"))
    return proc, report_json(bundle), time.monotonic() - started


def _incident(triage: dict[str, Any], test: str) -> dict[str, Any]:
    matches = [i for i in triage["incidents"] if i["test"] == f"test_hangs.py::{test}"]
    assert len(matches) == 1, triage["incidents"]
    return matches[0]


def test_the_run_ends_by_itself_with_one_hang_per_stuck_test(hung_run: Any) -> None:
    proc, triage, elapsed = hung_run
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert elapsed < 140
    hangs = {i["test"] for i in triage["incidents"] if i["cause"] == "hang"}
    assert hangs == {
        "test_hangs.py::test_deadlock",
        "test_hangs.py::test_native_pause",
        "test_hangs.py::test_grandchild",
    }
    assert all(i["cause"] == "hang" for i in triage["incidents"]), "healthy tests blamed"
    assert triage["run"]["tests"]["passed"] == 1


def test_deadlock_shows_both_threads(hung_run: Any) -> None:
    incident = _incident(hung_run[1], "test_deadlock")
    names = " ".join(_names(incident, native=False))
    assert "first_then_second" in names and "second_then_first" in names
    assert incident["phase"] == "call"
    assert incident["worker"] in ("gw0", "gw1")


def test_native_hang_shows_the_native_frame(hung_run: Any) -> None:
    incident = _incident(hung_run[1], "test_native_pause")
    assert any("pause" in name for name in _names(incident, native=True))
    assert "test_native_pause" in _names(incident, native=False)


def test_grandchild_stack_is_taken_with_its_own_pid(hung_run: Any) -> None:
    incident = _incident(hung_run[1], "test_grandchild")
    grandchild = [
        s for s in incident["stacks"] if any(f["name"] == "stuck_grandchild" for f in s["frames"])
    ]
    assert grandchild and grandchild[0]["pid"] != incident["pid"]


STUCK_SCRIPTS = {
    "ignored": "import signal, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "def stuck_ignoring():\n    while True:\n        time.sleep(0.1)\n"
    "print('ready', flush=True)\nstuck_ignoring()\n",
    "blocked": "import signal, time\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
    "def stuck_blocking():\n    while True:\n        time.sleep(0.1)\n"
    "print('ready', flush=True)\nstuck_blocking()\n",
}


@pytest.mark.parametrize(
    ("kind", "function"), [("ignored", "stuck_ignoring"), ("blocked", "stuck_blocking")]
)
def test_ctrl_c_that_does_nothing_is_explained(tmp_path: Path, kind: str, function: str) -> None:
    (tmp_path / "stuck.py").write_text(STUCK_SCRIPTS[kind])
    bundle = tmp_path / "bundle"
    wrap = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "forensics",
            "wrap",
            "--bundle",
            str(bundle),
            "--interrupt-grace",
            "2",
            "--",
            sys.executable,
            "stuck.py",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wrap.stdout is not None
        assert wrap.stdout.readline().strip() == "ready"
        time.sleep(0.5)
        started = time.monotonic()
        wrap.send_signal(signal.SIGINT)
        wrap.wait(timeout=60)
        assert time.monotonic() - started < 60
    finally:
        if wrap.poll() is None:
            wrap.kill()
    triage = report_json(bundle)
    [incident] = triage["incidents"]
    assert incident["cause"] == "hang"
    assert "SIGINT" in incident["summary"] and kind in incident["summary"]
    if kind == "blocked":
        assert "pending" in incident["summary"]
    assert function in _names(incident, native=False)


def test_pytest_timeout_thread_method_is_a_hang(tmp_path: Path) -> None:
    (tmp_path / "test_spin.py").write_text(
        "def spin_forever():\n    x = 0\n    while True:\n        x += 1\n\n"
        "def test_ok():\n    pass\n\ndef test_spin():\n    spin_forever()\n"
    )
    proc, bundle = _wrap(
        tmp_path, *_pytest("-n", "2", "--timeout", "5", "--timeout-method=thread", "test_spin.py")
    )
    assert proc.returncode == 1
    [incident] = report_json(bundle)["incidents"]
    assert incident["cause"] == "hang", incident["summary"]
    assert incident["test"] == "test_spin.py::test_spin"
    assert "spin_forever" in _names(incident)
    assert "pytest-timeout" in " ".join(e["excerpt"] for e in incident["evidence"])


@pytest.mark.skipif(
    shutil.which("setpriv") is None or os.geteuid() != 0,
    reason="needs root and setpriv to run py-spy without CAP_SYS_PTRACE",
)
def test_ptrace_denied_falls_back_to_faulthandler(tmp_path: Path) -> None:
    (tmp_path / "test_wait.py").write_text(
        "import time\n\ndef test_ok():\n    pass\n\n"
        "def test_stuck():\n    def wait_forever():\n        time.sleep(600)\n    wait_forever()\n"
    )
    # The py-spy installed with forensics, which need not be on PATH (a venv run by its path).
    py_spy = find_py_spy()
    assert py_spy is not None
    env = clean_env()
    # Without CAP_SYS_PTRACE py-spy may not attach to a target with more capabilities than it:
    # the same refusal a container without SYS_PTRACE gives.
    env["FORENSICS_PY_SPY"] = f"setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace {py_spy}"
    proc, bundle = _wrap(
        tmp_path, "--hang-timeout", "3", *_pytest("-n", "2", "test_wait.py"), env=env
    )
    assert proc.returncode == 1
    [incident] = report_json(bundle)["incidents"]
    assert incident["cause"] == "hang"
    assert "wait_forever" in _names(incident)
    explained = " ".join(e["excerpt"] for e in incident["evidence"])
    assert "stacks via faulthandler" in explained and "ptrace" in explained


def test_hang_without_xdist_ends_the_run(tmp_path: Path) -> None:
    """The stalled process is the supervisor's own child: it must still be reaped by the loop."""
    (tmp_path / "test_h.py").write_text(
        "import time\n\ndef test_ok():\n    pass\n\ndef test_hang():\n    time.sleep(1000)\n"
    )
    started = time.monotonic()
    proc, bundle = _wrap(tmp_path, "--hang-timeout", "2", *_pytest("test_h.py"), timeout=60)
    assert proc.returncode == 143, proc.stderr[-2000:]
    assert time.monotonic() - started < 45
    [incident] = report_json(bundle)["incidents"]
    assert (incident["cause"], incident["test"]) == ("hang", "test_h.py::test_hang")
