"""The agent every Python process of a wrapped run loads at start-up (via ``sitecustomize``).

It gives the process a faulthandler file of its own (``faults/<pid>.log``, all threads), an
on-demand dump signal, and a start record in ``workers/<pid>.jsonl`` naming its parent and the
test its parent was running.  Standard library only; every step is guarded, because this code
runs inside the user's processes and must never fail or slow their run.
"""

from __future__ import annotations

import atexit
import faulthandler
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from forensics.bundle import (
    ENV_BUNDLE,
    ENV_PARENT_TEST,
    ENV_PARENT_WORKER,
    FAULTS_DIR,
    WORKERS_DIR,
    JsonlWriter,
    open_append,
)

# A real-time signal nobody uses by default; the supervisor sends it to ask for a faulthandler
# dump of all threads when py-spy cannot attach.  Only registered where the disposition is the
# default, so a program that uses it keeps it.
DUMP_SIGNAL = signal.SIGRTMIN + 6 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2


class _State:
    bundle: Path | None = None
    pid: int = 0
    writer: JsonlWriter | None = None
    fault_fd: int | None = None
    fault_file: Any = None
    dump_registered = False
    # Set by the pytest agent so a forked child can name the test its parent was running.
    current_test: str | None = None
    worker: str | None = None


state = _State()


def bundle_dir() -> Path | None:
    value = os.environ.get(ENV_BUNDLE)
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


def record(kind: str, **fields: Any) -> None:
    """Append a breadcrumb to this process's journal; a no-op when the agent is not active."""
    if state.writer is None or state.pid != os.getpid():
        return
    state.writer.write({"t": time.time(), "kind": kind, "pid": state.pid, **fields})


def _open_fault_file(bundle: Path, pid: int) -> None:
    fd = open_append(bundle / FAULTS_DIR / f"{pid}.log")
    # faulthandler keeps the file object's descriptor; the object must outlive this call.
    fh = os.fdopen(fd, "w", buffering=1, encoding="utf-8", errors="replace")
    faulthandler.enable(file=fh, all_threads=True)
    if state.fault_file is not None:
        try:
            state.fault_file.close()
        except OSError:
            pass
    state.fault_file = fh
    state.fault_fd = fd
    try:
        current = signal.getsignal(DUMP_SIGNAL)
    except (ValueError, OSError):
        current = None
    if state.dump_registered or current in (signal.SIG_DFL, None):
        try:
            faulthandler.register(DUMP_SIGNAL, file=fh, all_threads=True, chain=False)
            state.dump_registered = True
        except (ValueError, OSError, RuntimeError):
            state.dump_registered = False


def reenable_faulthandler() -> None:
    """Point faulthandler back at our file (pytest's own plugin re-points it at stderr)."""
    if state.fault_file is not None and state.pid == os.getpid():
        try:
            faulthandler.enable(file=state.fault_file, all_threads=True)
        except (ValueError, OSError, RuntimeError):
            pass


def _start(parent_test: str | None, parent_worker: str | None, how: str) -> None:
    bundle = state.bundle
    if bundle is None:
        return
    pid = os.getpid()
    state.pid = pid
    try:  # Yama ptrace_scope=1: let the supervisor's py-spy attach (see agents/ptracer.py)
        from forensics.agents.ptracer import allow_supervisor

        allow_supervisor()
    except Exception:
        pass
    if state.writer is not None:
        # Inherited across fork: the parent's descriptor stays the parent's.
        state.writer = None
    state.writer = JsonlWriter(bundle / WORKERS_DIR / f"{pid}.jsonl")
    _open_fault_file(bundle, pid)
    record(
        "process-start",
        ppid=os.getppid(),
        argv=list(sys.argv) if hasattr(sys, "argv") else [],
        executable=sys.executable,
        python=sys.version.split()[0],
        how=how,
        parent_test=parent_test,
        parent_worker=parent_worker,
        dump_signal=int(DUMP_SIGNAL) if state.dump_registered else None,
        cwd=_cwd(),
    )


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _after_fork_in_child() -> None:
    parent_test, parent_worker = state.current_test, state.worker
    state.current_test = None
    state.worker = None
    try:
        _start(parent_test, parent_worker, "fork")
    except Exception:  # never fail the user's fork
        pass


def _at_exit() -> None:
    record("process-exit-clean")


def activate() -> bool:
    """Enable the agent in this process if the supervisor asked for it; True when active."""
    if state.bundle is not None:
        return True
    bundle = bundle_dir()
    if bundle is None:
        return False
    state.bundle = bundle
    try:
        _start(
            os.environ.get(ENV_PARENT_TEST) or None,
            os.environ.get(ENV_PARENT_WORKER) or None,
            "exec",
        )
        os.register_at_fork(after_in_child=_after_fork_in_child)
        atexit.register(_at_exit)
    except Exception:  # a broken agent must not break the run
        state.bundle = None
        return False
    return True
