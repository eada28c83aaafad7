"""The forensics agent inside every Python process of a wrapped run.  PYTEST_DONT_REWRITE

``forensics wrap`` puts this directory first on ``PYTHONPATH``; the ``sitecustomize`` beside this
file imports it under its own private name, so a user package called ``forensics`` is never
shadowed and pytest never sees a module of ours imported before it could rewrite it.

A guest in someone else's process, it stays invisible where a test could look:

- every process writes one start record (``workers/<pid>.jsonl``, opened, appended, closed) and
  one at a clean exit, and holds no descriptor; faulthandler stays as the user, the environment
  (``PYTHONFAULTHANDLER``, ``-X faulthandler``) or a library set it, and where nothing set it,
  it is turned on for stderr, where the run's output capture can find a fatal error's stacks;
- only pytest processes (the controller, xdist workers, a plain pytest), through the pytest
  plugin, keep their journal open, send faulthandler output for all threads to
  ``faults/<pid>.log`` (pytest's own plugin points it at stderr; where that plugin is disabled,
  faulthandler is left off) and register an on-demand dump signal;
- a child forked from a pytest process gives all of that back: its faulthandler writes to stderr
  again, as it would without the agent, and the parent's descriptors are closed.

Standard library only, nothing that costs more than a few hundred microseconds to import, and
every step guarded: the agent must never fail or slow the user's run.
"""

from __future__ import annotations

# The C module: `signal` would import enum, milliseconds at start-up.
import _signal as signal  # type: ignore[import-not-found]
import io
import os
import sys
import time

# Names shared with ``forensics.bundle`` (a test checks they agree); the agent cannot import the
# package: that would put the name ``forensics`` in every process of the user's run.
ENV_BUNDLE = "FORENSICS_BUNDLE"
WORKERS_DIR = "workers"
FAULTS_DIR = "faults"
# A real-time signal nobody uses by default; the supervisor sends it to ask a pytest process for
# a faulthandler dump of all threads when py-spy cannot attach.
DUMP_SIGNAL: int = signal.SIGRTMIN + 6 if hasattr(signal, "SIGRTMIN") else signal.SIGUSR2

_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC

try:  # the C string escaper json itself uses; importing json would pull in re
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - every CPython has it
    from json import dumps as _quote  # type: ignore[assignment]


def _dumps(value: object) -> str:
    """JSON for the small records the agent writes (str, int, float, bool, None, list, dict)."""
    if isinstance(value, str):
        return _quote(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return (
            repr(value) if value == value and value not in (float("inf"), -float("inf")) else "null"
        )
    if isinstance(value, dict):
        return "{" + ",".join(f"{_quote(str(k))}:{_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    return _quote(str(value))


class _State:
    bundle: str | None = None
    pid = 0
    # Held open only in pytest processes (see enter_pytest).
    journal_fd: int | None = None
    fault_file: io.TextIOWrapper | None = None
    # Whether the agent itself turned faulthandler on for stderr at start-up.
    faulthandler_on_stderr = False
    dump_registered = False
    # The test this pytest process is running, so a forked child can name it.
    current_test: str | None = None
    worker: str | None = None
    # The record encoder: this module's own at start-up (json imports re, milliseconds), the
    # C encoder of json in pytest, which imported it long before and writes a record per phase.
    encode = staticmethod(_dumps)


state = _State()


def _journal_path() -> str:
    return os.path.join(state.bundle or "", WORKERS_DIR, f"{state.pid}.jsonl")


def record(kind: str, **fields: object) -> None:
    """Append a breadcrumb to this process's journal; a no-op where the agent is not active."""
    if state.bundle is None or state.pid != os.getpid():
        return
    fields = {"t": time.time(), "kind": kind, "pid": state.pid, **fields}
    try:
        data = (state.encode(fields) + "\n").encode("utf-8", "backslashreplace")
        if state.journal_fd is not None:
            os.write(state.journal_fd, data)
            return
        fd = os.open(_journal_path(), _FLAGS, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except (OSError, ValueError, TypeError):
        pass  # a full disk or a removed bundle must not fail the user's code


# --- Yama: let the supervisor's stack taker attach -------------------------------------------

ENV_SUPERVISOR_PID = "FORENSICS_SUPERVISOR_PID"
YAMA_SCOPE = "/proc/sys/kernel/yama/ptrace_scope"
PR_SET_PTRACER = 0x59616D61  # "Yama"


def yama_scope(path: str = YAMA_SCOPE) -> int | None:
    """The Yama ptrace scope, or None where Yama is absent (or the file unreadable)."""
    try:
        with open(path, "rb") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def allow_supervisor(path: str = YAMA_SCOPE) -> int | None:
    """Declare the supervisor as this process's tracer where Yama scope 1 requires it.

    With scope 1 a process may only be ptraced by its ancestors, and py-spy is the supervisor's
    child, not an ancestor of the workers; ``prctl(PR_SET_PTRACER, pid)`` allows *pid* and its
    descendants.  Scope 0 needs nothing, scopes 2 and 3 ignore it.  Returns the errno of a
    failed prctl, 0 when it succeeded, None when no call was needed.
    """
    value = os.environ.get(ENV_SUPERVISOR_PID, "")
    if not value.isdigit() or yama_scope(path) != 1:
        return None
    import ctypes  # only at scope 1: most processes never pay for it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(int(value)), 0, 0, 0) == 0:
        return 0
    return int(ctypes.get_errno())


def _start(how: str, parent_test: str | None = None, parent_worker: str | None = None) -> None:
    state.pid = os.getpid()
    try:  # per task: a forked child declares it again
        allow_supervisor()
    except Exception:
        pass
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None
    record(
        "process-start",
        ppid=os.getppid(),
        argv=list(getattr(sys, "argv", [])),
        executable=sys.executable,
        python=sys.version.split()[0],
        how=how,
        parent_test=parent_test,
        parent_worker=parent_worker,
        cwd=cwd,
    )


def _after_fork_in_child() -> None:
    parent_test, parent_worker = state.current_test, state.worker
    was_pytest = state.journal_fd is not None
    state.current_test = state.worker = None
    try:
        if was_pytest:
            _leave_pytest()
        _start("fork", parent_test, parent_worker)
    except Exception:  # never fail the user's fork
        pass


def _at_exit() -> None:
    record("process-exit-clean")


def activate() -> bool:
    """Start the agent if the supervisor asked for it (``FORENSICS_BUNDLE``); True when active."""
    if state.bundle is not None:
        return True
    bundle = os.environ.get(ENV_BUNDLE)
    if not bundle:
        return False
    state.bundle = bundle
    try:
        _start("exec")
        _faulthandler_on_stderr()
        os.register_at_fork(after_in_child=_after_fork_in_child)
        import atexit

        atexit.register(_at_exit)
    except Exception:  # a broken agent must not break the run
        state.bundle = None
        return False
    return True


def _faulthandler_on_stderr() -> None:
    """Tracebacks of a fatal error on the process's own stderr, unless someone decided otherwise.

    ``PYTHONFAULTHANDLER`` set to anything (even "0") or ``-X faulthandler`` is a decision; so is
    a program without a stderr.  No new descriptor: faulthandler writes to fd 2.
    """
    import faulthandler

    if "PYTHONFAULTHANDLER" in os.environ or faulthandler.is_enabled():
        return
    if getattr(sys, "_xoptions", {}).get("faulthandler") is not None or sys.__stderr__ is None:
        return
    try:
        faulthandler.enable(file=sys.__stderr__, all_threads=True)
        state.faulthandler_on_stderr = True
    except (ValueError, OSError, RuntimeError, AttributeError):
        pass


def enter_pytest(worker: str | None, faulthandler_plugin: bool = True) -> int | None:
    """This process is pytest: keep its journal open, its fault dumps in a file of its own.

    Returns the dump signal's number when it was registered (its disposition was the default).
    """
    if state.bundle is None or state.pid != os.getpid():
        return None
    import faulthandler

    state.worker = worker
    if state.journal_fd is None:
        state.journal_fd = os.open(_journal_path(), _FLAGS, 0o600)
    import json

    state.encode = json.JSONEncoder(separators=(",", ":"), default=str).encode  # type: ignore[assignment]
    if state.fault_file is None and not faulthandler_plugin:
        # `-p no:faulthandler`: a test may check that it is off, as it is without the agent.
        if state.faulthandler_on_stderr:
            faulthandler.disable()
            state.faulthandler_on_stderr = False
        return None
    if state.fault_file is None:
        path = os.path.join(state.bundle, FAULTS_DIR, f"{state.pid}.log")
        state.fault_file = os.fdopen(
            os.open(path, _FLAGS, 0o600), "w", buffering=1, encoding="utf-8", errors="replace"
        )
    faulthandler.enable(file=state.fault_file, all_threads=True)
    try:
        default = signal.getsignal(DUMP_SIGNAL) in (signal.SIG_DFL, None)
    except (ValueError, OSError):
        default = False
    if default or state.dump_registered:
        try:
            faulthandler.register(DUMP_SIGNAL, file=state.fault_file, all_threads=True)
            state.dump_registered = True
        except (ValueError, OSError, RuntimeError):
            state.dump_registered = False
    return int(DUMP_SIGNAL) if state.dump_registered else None


def _leave_pytest() -> None:
    """In a child forked from pytest: the state that child would have without the agent."""
    import faulthandler

    if state.dump_registered:
        try:
            faulthandler.unregister(DUMP_SIGNAL)
        except (ValueError, RuntimeError):
            pass
        state.dump_registered = False
    if state.fault_file is not None:
        # pytest pointed faulthandler at (a copy of) stderr; so does the child without us.
        try:
            if sys.__stderr__ is not None:
                faulthandler.enable(file=sys.__stderr__, all_threads=True)
            else:
                faulthandler.disable()
        except (ValueError, OSError, RuntimeError):
            faulthandler.disable()
        try:
            state.fault_file.close()
        except OSError:
            pass
        state.fault_file = None
    if state.journal_fd is not None:
        try:
            os.close(state.journal_fd)
        except OSError:
            pass
        state.journal_fd = None
