"""Yama ptrace_scope=1: the agent declares the supervisor as its tracer, and only then.

The machines this project runs on have no Yama, so the kernel answers PR_SET_PTRACER with
EINVAL; what is checked live is that the call is made, with the supervisor's pid, exactly when
the scope is 1 (strace sees the real syscall).  The end-to-end case masks /proc/sys/kernel in a
private mount namespace so the agent reads a scope of 1.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from forensics.agents.ptracer import ENV_SUPERVISOR_PID, allow_supervisor, yama_scope
from forensics.bundle import SUBDIRS
from forensics.supervise.launch import SITE_DIR, child_environment

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="needs strace to see the prctl")


def _scope_file(tmp_path: Path, value: str) -> str:
    path = tmp_path / "ptrace_scope"
    path.write_text(value + "\n")
    return str(path)


def test_scope_is_read_and_absent_yama_is_none(tmp_path: Path) -> None:
    assert yama_scope(_scope_file(tmp_path, "1")) == 1
    assert yama_scope(str(tmp_path / "absent")) is None


def test_no_call_without_supervisor_or_outside_scope_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_SUPERVISOR_PID, raising=False)
    assert allow_supervisor(_scope_file(tmp_path, "1")) is None
    monkeypatch.setenv(ENV_SUPERVISOR_PID, "1")
    for scope in ("0", "2", "3"):
        assert allow_supervisor(_scope_file(tmp_path, scope)) is None


def test_child_environment_names_the_supervisor(tmp_path: Path) -> None:
    env = child_environment({}, tmp_path, "r1")
    assert env[ENV_SUPERVISOR_PID] == str(os.getpid())


def _strace_prctl(argv: list[str], env: dict[str, str], tmp_path: Path) -> str:
    assert STRACE is not None
    log = tmp_path / "strace.log"
    proc = subprocess.run(
        [STRACE, "-f", "-e", "trace=prctl", "-o", str(log), *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return log.read_text()


@needs_strace
def test_scope_1_calls_pr_set_ptracer_with_the_supervisor_pid(tmp_path: Path) -> None:
    scope = _scope_file(tmp_path, "1")
    code = f"from forensics.agents import ptracer; print(ptracer.allow_supervisor({scope!r}))"
    env = {**os.environ, ENV_SUPERVISOR_PID: "4242"}
    trace = _strace_prctl([sys.executable, "-c", code], env, tmp_path)
    calls = [ln for ln in trace.splitlines() if "0x59616d61" in ln or "PR_SET_PTRACER" in ln]
    assert len(calls) == 1 and "4242" in calls[0], trace
    # Without Yama the kernel does not know the option: the agent returns the errno, no raise.
    if yama_scope() is None:
        assert "EINVAL" in calls[0]
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    ).stdout.strip()
    assert out in ("0", str(errno.EINVAL))


@needs_strace
@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("unshare") is None,
    reason="needs root and unshare to mask /proc/sys/kernel in a private mount namespace",
)
def test_agent_declares_the_supervisor_at_start_under_scope_1(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    for sub in SUBDIRS:
        (bundle / sub).mkdir(parents=True)
    env = {
        **os.environ,
        "FORENSICS_BUNDLE": str(bundle),
        ENV_SUPERVISOR_PID: "4343",
        "PYTHONPATH": str(SITE_DIR),
    }
    # A tmpfs over /proc/sys/kernel, seen only by this namespace, holding yama/ptrace_scope=1.
    script = (
        "mount -t tmpfs none /proc/sys/kernel && mkdir /proc/sys/kernel/yama && "
        "echo 1 > /proc/sys/kernel/yama/ptrace_scope && "
        'exec "$@"'
    )
    code = "import os; os.fork() or os._exit(0); os.wait()"
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
    trace = _strace_prctl([*argv, sys.executable, "-c", code], env, tmp_path)
    calls = [ln for ln in trace.splitlines() if "0x59616d61" in ln or "PR_SET_PTRACER" in ln]
    # The process and its forked child each declare the tracer: Yama keeps it per process.
    assert len(calls) == 2 and all("4343" in c for c in calls), trace
    assert len({c.split()[0] for c in calls}) == 2, trace
    assert len(list((bundle / "workers").glob("*.jsonl"))) == 2
