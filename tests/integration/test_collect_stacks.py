"""Stall evidence from real processes: deadlocks, native waits, signal masks, full pipes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from forensics.analyze.sigint import sigint_reasons
from forensics.collect.procinfo import read_proc, sigint_facts
from forensics.collect.pyspy import dump_pyspy, find_py_spy
from forensics.collect.stacks import collect_evidence

pytestmark = pytest.mark.skipif(find_py_spy() is None, reason="py-spy not installed")

_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Iterator[None]:
    yield
    while _started:
        proc = _started.pop()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def spawn(code: str, *args: str) -> subprocess.Popen[str]:
    """Start *code* in its own session; it prints "ready" once in the state under test."""
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _started.append(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def names(stacks: list) -> set[str]:  # type: ignore[type-arg]
    return {f.name for s in stacks for f in s.frames}


def test_deadlocked_threads_both_in_pyspy_stacks(tmp_path: Path) -> None:
    proc = spawn(
        """
        import threading, time
        a, b = threading.Lock(), threading.Lock()
        def deadlock_left():
            with a:
                time.sleep(0.2)
                with b: pass
        def deadlock_right():
            with b:
                time.sleep(0.2)
                with a: pass
        for fn in (deadlock_left, deadlock_right):
            threading.Thread(target=fn).start()
        time.sleep(0.5)
        print("ready", flush=True)
        """
    )
    ev = collect_evidence([proc.pid], tmp_path, "test", None, None)
    mine = ev.by_pid(proc.pid)
    assert mine is not None and mine.method == "py-spy", mine
    assert {"deadlock_left", "deadlock_right"} <= names(mine.stacks)
    for suffix in ("proc.json", "pyspy.json", "pyspy.txt", "evidence.json"):
        assert (tmp_path / f"{proc.pid}.{suffix}").is_file()
    assert "deadlock_left" in (tmp_path / f"{proc.pid}.pyspy.txt").read_text()
    json.loads((tmp_path / f"{proc.pid}.pyspy.json").read_text())
    # A second stall on the same process never overwrites the first dump.
    again = collect_evidence([proc.pid], tmp_path, "again", None, None)
    assert f"{proc.pid}.2.pyspy.json" in again.processes[0].files


def test_native_frame_of_libc_pause() -> None:
    # py-spy reads thread names from the target's `threading` module; without the import the
    # main thread has no name (it was named only where start-up code imported threading).
    proc = spawn(
        """
        import ctypes, threading
        print("ready", flush=True)
        ctypes.CDLL(None).pause()
        """
    )
    time.sleep(0.2)
    res = dump_pyspy(proc.pid)
    assert res.ok, res.error
    frames = [f for s in res.stacks for f in s.frames]
    pause = [f for f in frames if f.name in ("pause", "__libc_pause", "__GI___libc_pause")]
    assert pause and pause[0].native and pause[0].library and "libc" in pause[0].library
    assert res.stacks[0].thread.startswith(f"{proc.pid} MainThread")


def test_sigint_ignored() -> None:
    proc = spawn(
        """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    info = read_proc(proc.pid)
    assert "SIGINT" in info.signals.ignored
    assert f"SIGINT is ignored (SIG_IGN) in pid {proc.pid}" in sigint_reasons(sigint_facts(info))


def test_sigint_blocked_then_pending() -> None:
    proc = spawn(
        """
        import signal, time
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    os.kill(proc.pid, signal.SIGINT)
    time.sleep(0.1)
    assert proc.poll() is None
    info = read_proc(proc.pid)
    assert "SIGINT" in info.signals.shared_pending and "SIGINT" in info.threads[0].blocked
    reasons = " ".join(sigint_reasons(sigint_facts(info)))
    assert "pending" in reasons and "blocked in every thread" in reasons, reasons


def test_full_signal_wakeup_pipe_is_flagged() -> None:
    # Seed 002 in small: the wakeup fd is a non-blocking pipe nobody drains.
    proc = spawn(
        """
        import os, signal, time
        r, w = os.pipe()
        os.set_blocking(w, False)
        signal.set_wakeup_fd(w)
        try:
            while True:
                os.write(w, b"\\2")
        except BlockingIOError:
            pass
        print(f"ready", flush=True)
        print(w, flush=True)
        time.sleep(60)
        """
    )
    assert proc.stdout is not None
    wfd = int(proc.stdout.readline())
    info = read_proc(proc.pid)
    full = {p.fd: p for p in info.full_pipes}
    assert wfd in full and full[wfd].self_pipe and full[wfd].queued == full[wfd].capacity
    assert full[wfd].writable is False
    assert any(f"wakeup pipe fd {wfd}" in r for r in sigint_reasons(sigint_facts(info)))
    # Measuring never consumed a byte.
    assert read_proc(proc.pid).full_pipes[0].queued == full[wfd].queued


def test_grandchild_stacks_are_collected(tmp_path: Path) -> None:
    script = tmp_path / "tree.py"
    script.write_text(
        textwrap.dedent(
            """
            import subprocess, sys, time
            def grandchild_waits():
                time.sleep(60)
            level = int(sys.argv[1])
            if level < 2:
                subprocess.Popen([sys.executable, __file__, str(level + 1)])
                time.sleep(60)
            else:
                print("ready", flush=True)
                grandchild_waits()
            """
        )
    )
    top = subprocess.Popen(
        [sys.executable, str(script), "0"],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    _started.append(top)
    assert top.stdout is not None and top.stdout.readline().strip() == "ready"
    out = tmp_path / "stacks"
    out.mkdir()
    ev = collect_evidence([top.pid], out, "stall", None, None)
    assert len(ev.processes) == 3
    child, grandchild = ev.processes[1], ev.processes[2]
    assert child.procinfo is not None and child.procinfo.children == [grandchild.pid]
    assert grandchild.method == "py-spy" and "grandchild_waits" in names(grandchild.stacks)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root, setpriv")
def test_ptrace_denied_falls_back_to_faulthandler(tmp_path: Path) -> None:
    # py-spy runs without CAP_SYS_PTRACE against a target that holds it: the kernel's
    # capability rule for ptrace (tracer's caps must cover the tracee's) refuses the attach,
    # as in a container started without SYS_PTRACE.
    faults = tmp_path / "faults"
    faults.mkdir()
    proc = spawn(
        """
        import faulthandler, os, signal, sys, time
        fh = open(os.path.join(sys.argv[1], f"{os.getpid()}.log"), "a")
        faulthandler.register(signal.SIGUSR2, file=fh, all_threads=True, chain=False)
        def waiting_in_fallback():
            print("ready", flush=True)
            time.sleep(60)
        waiting_in_fallback()
        """,
        str(faults),
    )
    spy = find_py_spy()
    assert spy is not None
    no_ptrace = ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", spy]
    denied = dump_pyspy(proc.pid, py_spy=no_ptrace)
    assert denied.failure == "ptrace-denied", denied.error
    assert denied.hint and "SYS_PTRACE" in denied.hint and "ptrace_scope" in denied.hint
    out = tmp_path / "stacks"
    out.mkdir()
    ev = collect_evidence([proc.pid], out, "stall", signal.SIGUSR2, faults, py_spy=no_ptrace)
    mine = ev.processes[0]
    assert mine.method == "faulthandler", mine.why
    assert mine.why and "ptrace-denied" in mine.why
    assert "waiting_in_fallback" in names(mine.stacks)
    assert all(s.method == "faulthandler" for s in mine.stacks)
    assert (out / f"{proc.pid}.faulthandler.txt").is_file()
    assert proc.poll() is None  # the dump signal did not kill it (chain=False, handler kept)


def test_no_fallback_says_why(tmp_path: Path) -> None:
    proc = spawn('print("ready", flush=True)\nimport time\ntime.sleep(60)')
    ev = collect_evidence([proc.pid], tmp_path, "stall", None, None, py_spy=["/nonexistent/py-spy"])
    mine = ev.processes[0]
    assert mine.method == "none" and mine.hint and "pip install py-spy" in mine.hint
    assert mine.why and "no dump signal" in mine.why


VFORK_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    printf("ready\n");
    fflush(stdout);
    /* The parent sleeps in the kernel until the child execs or exits: state D. */
    if (vfork() == 0) { sleep(60); _exit(0); }
    return 0;
}
"""


@pytest.mark.skipif(not shutil.which("gcc"), reason="needs gcc")
def test_vfork_parent_is_d_state(tmp_path: Path) -> None:
    src, exe = tmp_path / "vf.c", tmp_path / "vf"
    src.write_text(VFORK_C)
    subprocess.run(["gcc", "-o", str(exe), str(src)], check=True)
    proc = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True, start_new_session=True)
    _started.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 5
    while read_proc(proc.pid).state != "D" and time.monotonic() < deadline:
        time.sleep(0.02)
    info = read_proc(proc.pid)
    assert info.d_state and info.state == "D"
    assert any(
        "D-state" in r and "not even SIGKILL" in r for r in sigint_reasons(sigint_facts(info))
    )
    ev = collect_evidence([proc.pid], tmp_path, "stall", None, None, timeout=5)
    assert [p.pid for p in ev.processes][:1] == [proc.pid] and len(ev.processes) == 2
    assert ev.processes[0].error  # not Python: py-spy says so, the /proc facts stay


def test_exited_pid_never_raises(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    ev = collect_evidence([proc.pid], tmp_path, "stall", signal.SIGUSR2, tmp_path)
    mine = ev.processes[0]
    assert mine.procinfo is not None and not mine.procinfo.exists
    assert mine.stacks == [] and mine.error
