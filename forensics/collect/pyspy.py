"""Take all threads' stacks of a live process with py-spy, native frames included.

py-spy 0.4 combines ``--native`` and ``--json``, so one run gives everything.  The text form is
rendered from that same JSON in py-spy's own layout rather than taken by a second run: two
py-spy processes attached at once to one target steal each other's ptrace attach (measured:
the second returns no threads, or the first does), and a second sequential run would pause the
target twice, double the time, and could show a different moment.  The raw JSON and the text
are kept next to the parsed :class:`~forensics.model.Stack` list.  Failures become an ``error``
plus a ``hint`` that says how to fix them (no py-spy, no ptrace rights, not a Python process),
never an exception.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.model import Frame, Stack

HINT_INSTALL = "install py-spy in the environment that runs forensics: pip install py-spy"
HINT_PTRACE = (
    "py-spy was refused ptrace; least privilege first: where passwordless sudo exists (GitHub "
    'Actions runners) set FORENSICS_PY_SPY="sudo -n {py_spy}"; in a container add only '
    "CAP_SYS_PTRACE (Docker `--cap-add SYS_PTRACE`, Kubernetes "
    "`securityContext.capabilities.add: [SYS_PTRACE]`); under Yama ptrace_scope=1 the agents "
    "already declare the supervisor as their tracer, so a denied process is one that did not "
    "load the agent. Last resorts, which weaken the whole machine: `setcap cap_sys_ptrace+ep` "
    "on py-spy, or `sysctl kernel.yama.ptrace_scope=0`"
)
HINT_NOT_PYTHON = "not a Python process: its state and kernel stack are in the /proc evidence"
HINT_GONE = "the process exited before its stacks could be taken"
HINT_TIMEOUT = (
    "py-spy did not finish in time: the process may be in D-state or the machine overloaded"
)


@dataclass
class PySpyResult:
    pid: int
    ok: bool
    stacks: list[Stack] = field(default_factory=list)
    raw_json: str | None = None
    raw_text: str | None = None
    error: str | None = None
    hint: str | None = None
    # "ptrace-denied" | "no-py-spy" | "not-python" | "exited" | "timeout" | "failed" | None
    failure: str | None = None
    duration: float = 0.0
    command: list[str] = field(default_factory=list)


def find_py_spy() -> str | None:
    """The py-spy next to this interpreter first: a pyenv shim on PATH costs ~0.1 s a call."""
    local = Path(sys.executable).parent / "py-spy"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which("py-spy")


def configured_py_spy() -> list[str] | None:
    """FORENSICS_PY_SPY: the py-spy command to run, e.g. a pinned binary or one under sudo."""
    return shlex.split(os.environ.get("FORENSICS_PY_SPY", "")) or None


def ptrace_access(py_spy: Sequence[str] | None = None) -> dict[str, Any]:
    """Whether py-spy can attach to the run's processes here, as a ``collector`` record's fields.

    Facts only (no attach is tried): the effective user, CAP_SYS_PTRACE, the Yama scope and the
    py-spy command.  Where py-spy will be refused, ``reason`` names the fallback and the
    least-privilege fix.
    """
    from forensics.agents.ptracer import yama_scope

    scope = yama_scope()
    facts: dict[str, Any] = {"name": "ptrace", "yama_scope": scope}
    exe = find_py_spy()
    if py_spy:
        return {**facts, "ok": True, "via": " ".join(py_spy)}
    if exe is None:
        return {**facts, "ok": False, "reason": f"py-spy not found; {HINT_INSTALL}"}
    privileged = os.geteuid() == 0 or _has_cap_sys_ptrace()
    if privileged and scope != 3:
        return {**facts, "ok": True, "via": "CAP_SYS_PTRACE"}
    if scope is None or scope == 0:
        return {**facts, "ok": True, "via": "same user"}
    if scope == 1:
        return {**facts, "ok": True, "via": "PR_SET_PTRACER from the agents (Yama scope 1)"}
    fix = (
        "no ptrace at all (Yama ptrace_scope=3)"
        if scope == 3
        else "Yama ptrace_scope=2 lets only CAP_SYS_PTRACE attach; least-privilege fix: "
        f'FORENSICS_PY_SPY="sudo -n {exe}" where passwordless sudo exists'
    )
    return {
        **facts,
        "ok": False,
        "reason": f"stacks come from the agents' faulthandler dumps (Python frames only): {fix}",
    }


def _has_cap_sys_ptrace() -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << 19))
    except (OSError, ValueError, IndexError):
        pass
    return False


def _library(path: str | None) -> str | None:
    return os.path.basename(path) if path else None


def parse_pyspy_json(text: str, pid: int) -> list[Stack]:
    """Turn ``py-spy dump --json`` output into stacks, innermost frame first (as py-spy prints).

    A frame is native when py-spy names a shared object for it (``module``); Python frames
    carry the source file and line.  Unexpected shapes are skipped, never evaluated.
    """
    data = json.loads(text)
    if not isinstance(data, list):
        raise ValueError("py-spy JSON is not a list of threads")
    stacks = []
    for thread in data:
        if not isinstance(thread, dict):
            continue
        stacks.append(_stack(thread, pid))
    return stacks


def _stack(thread: dict[str, Any], pid: int) -> Stack:
    tid = thread.get("os_thread_id") or thread.get("thread_id")
    name = thread.get("thread_name") or ""
    activity = "active" if thread.get("active") else "idle"
    gil = bool(thread.get("owns_gil"))
    frames = []
    for raw in thread.get("frames") or []:
        if not isinstance(raw, dict):
            continue
        module = raw.get("module")
        native = isinstance(module, str) and bool(module)
        line = raw.get("line")
        filename = raw.get("filename")
        # A native frame's filename is the C source when debug info has it, else the library.
        source = filename if isinstance(filename, str) and filename != module else None
        frames.append(
            Frame(
                name=str(raw.get("name", "?")),
                file=source,
                line=line if isinstance(line, int) and line > 0 else None,
                native=native,
                library=_library(module) if native else None,
            )
        )
    # py-spy's idle/active is a guess from the top frame; the collector replaces it with the
    # kernel's state of the thread where /proc has it.
    label = f"{tid} {name}".strip() + (" (gil)" if gil else "")
    return Stack(
        pid=pid,
        thread=label,
        frames=frames,
        method="py-spy",
        state=activity,
        tid=tid if isinstance(tid, int) and not isinstance(tid, bool) else None,
        thread_name=name if isinstance(name, str) and name else None,
        holds_gil=gil,
    )


def classify_failure(stderr: str, pid: int) -> tuple[str, str]:
    """Map py-spy's stderr to (failure kind, hint)."""
    low = stderr.lower()
    if not os.path.exists(f"/proc/{pid}") or "no such file or directory (os error 2)" in low:
        return "exited", HINT_GONE
    if "permission denied" in low or "operation not permitted" in low or "os error 1)" in low:
        return "ptrace-denied", HINT_PTRACE.format(py_spy=find_py_spy() or "py-spy")
    if "failed to find python version" in low or "failed to find a python interpreter" in low:
        return "not-python", HINT_NOT_PYTHON
    return "failed", "see py-spy's message above"


def _first_error_line(stderr: str) -> str:
    """py-spy prints an anyhow chain then a backtrace; keep the message and its causes."""
    kept = []
    for line in stderr.splitlines():
        if line.startswith("Stack backtrace:"):
            break
        if line.strip():
            kept.append(line.strip())
    return " ".join(kept)[:500] or "py-spy failed without a message"


def dump_pyspy(
    pid: int,
    timeout: float = 10.0,
    native: bool = True,
    *,
    text: bool = True,
    py_spy: Sequence[str] | None = None,
) -> PySpyResult:
    """Dump every thread of *pid*; never raises.

    *py_spy* is the argv that starts py-spy (default: the one installed with forensics), so a
    caller can run it through ``sudo -n`` or, in tests, without CAP_SYS_PTRACE.
    """
    start = time.monotonic()
    argv = list(py_spy) if py_spy else None
    if argv is None:
        exe = find_py_spy()
        if exe is None:
            return PySpyResult(
                pid, False, error="py-spy not found", hint=HINT_INSTALL, failure="no-py-spy"
            )
        argv = [exe]
    base = [*argv, "dump", "--pid", str(pid)] + (["--native"] if native else [])
    result = PySpyResult(pid, False, command=[*base, "--json"])
    try:
        proc = _spawn([*base, "--json"])
    except OSError as exc:
        result.error = f"cannot run {argv[0]}: {exc.strerror}"
        result.hint, result.failure = HINT_INSTALL, "no-py-spy"
        return result
    rc, out, err = _finish(proc, start + timeout)
    result.duration = time.monotonic() - start
    result.raw_json = out or None
    if rc is None:
        result.error, result.hint, result.failure = (
            f"py-spy timed out after {timeout:g} s",
            HINT_TIMEOUT,
            "timeout",
        )
        return result
    if rc != 0:
        result.error = _first_error_line(err)
        result.failure, result.hint = classify_failure(err, pid)
        return result
    try:
        result.stacks = parse_pyspy_json(out, pid)
    except ValueError as exc:
        result.error, result.failure = f"unreadable py-spy JSON: {exc}", "failed"
        result.hint = "report the py-spy version; the raw output is kept in the bundle"
        return result
    result.ok = True
    if text:
        result.raw_text = render_text(pid, result.stacks)
    return result


def render_text(pid: int, stacks: list[Stack]) -> str:
    """py-spy's text layout (``Thread TID (idle): "name"`` then indented frames)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        cmd = " ".join(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
    except OSError:
        cmd = "?"
    lines = [f"Process {pid}: {cmd}", "(rendered by forensics from py-spy dump --json)", ""]
    for stack in stacks:
        status = (stack.state or "?") + ("+gil" if stack.holds_gil else "")
        tid = stack.tid if stack.tid is not None else "?"
        lines.append(f'Thread {tid} ({status}): "{stack.thread_name or ""}"')
        for frame in stack.frames:
            if frame.native:
                where = frame.library or "?"
                if frame.file and frame.line:
                    where = f"{os.path.basename(frame.file)}:{frame.line}"
            else:
                where = f"{frame.file}:{frame.line}" if frame.line else f"{frame.file}"
            lines.append(f"    {frame.name} ({where})")
    return "\n".join(lines) + "\n"


def _spawn(argv: list[str]) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        # py-spy prints a Rust backtrace on errors; we keep only the message.
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    _realtime(proc.pid)
    return proc


# A stalled run is often busy: spinning threads of many processes compete with py-spy for the
# cores, and py-spy keeps each target paused while it unwinds.  Real-time priority lets it
# finish first (8 spinning processes on 2 cores: 1.4 s -> 0.5 s); the dump is short, killed at
# its timeout, and the kernel's RT throttling leaves the rest of the machine 5% regardless.
_RT_PRIORITY = 10


def _realtime(pid: int) -> None:
    # Set from here on the started pid, not in a preexec_fn: that would run Python in a fork of
    # the threaded supervisor.  py-spy has only just exec'd; it attaches after this returns.
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(_RT_PRIORITY))
    except (OSError, AttributeError):
        pass  # not privileged: normal priority


def _finish(proc: subprocess.Popen[str], deadline: float) -> tuple[int | None, str, str]:
    """Wait for *proc* until *deadline*; kill it past that (rc None) so no py-spy lingers."""
    try:
        out, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return None, out, err
