"""Starting the wrapped command: its own process group, death with the supervisor, agents on."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from forensics.agents.ptracer import ENV_SUPERVISOR_PID
from forensics.bundle import ENV_BUNDLE, ENV_RUN_ID

PR_SET_CHILD_SUBREAPER = 36

SITE_DIR = Path(__file__).resolve().parent.parent / "agents" / "site"
EXEC_HELPER = Path(__file__).resolve().parent / "exec_helper.py"

_libc: ctypes.CDLL | None = None


def _prctl(option: int, arg: int) -> bool:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return bool(_libc.prctl(option, arg, 0, 0, 0) == 0)


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to us, so the tree stays whole and we reap them."""
    try:
        return _prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        return False


def child_environment(base: Mapping[str, str], bundle: Path, run_id: str) -> dict[str, str]:
    env = dict(base)
    env[ENV_BUNDLE] = str(bundle)
    env[ENV_RUN_ID] = run_id
    env[ENV_SUPERVISOR_PID] = str(os.getpid())  # the agents' PR_SET_PTRACER names us (Yama)
    pythonpath = env.get("PYTHONPATH")
    env["PYTHONPATH"] = f"{SITE_DIR}{os.pathsep}{pythonpath}" if pythonpath else str(SITE_DIR)
    # Nothing else: PYTHONFAULTHANDLER would change where the fatal errors of processes the agent
    # leaves alone are printed, and whether their faulthandler reports itself enabled.
    return env


def start_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    cgroup_procs: str | None = None,
    *,
    core_limit: int | None = None,
    stdin_devnull: bool = False,
) -> subprocess.Popen[bytes]:
    """Start *argv* in its own process group, in the run's cgroup, dying with us.

    No ``preexec_fn``: it runs Python in a fork of this threaded process, which CPython
    documents as unsafe.  The process group is set by subprocess's C code
    (``process_group=0``), the rest by :mod:`forensics.supervise.exec_helper`, which execs the
    command in the same process.  Raises ``OSError`` as Popen does when the command cannot run.
    """
    read_fd, write_fd = os.pipe()
    helper = [sys.executable, "-I", "-S", str(EXEC_HELPER), str(os.getpid()), str(write_fd)]
    extra: dict[str, Any] = {"process_group": 0} if sys.version_info >= (3, 11) else {}
    core = "-" if core_limit is None else str(core_limit)
    try:
        proc = subprocess.Popen(
            [*helper, cgroup_procs or "-", core, "--", *argv],
            env=dict(env),
            stdin=subprocess.DEVNULL if stdin_devnull else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            pass_fds=(write_fd,),
            **extra,
        )
    finally:
        os.close(write_fd)
    with os.fdopen(read_fd, "rb") as status:
        failure = status.read()
    if failure:
        proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        number, _, message = failure.decode("utf-8", "replace").partition(":")
        raise OSError(int(number) if number.isdigit() else errno.ENOEXEC, message, argv[0])
    return proc


def terminal_in_foreground() -> bool:
    """Whether stdin is a terminal whose foreground process group is ours."""
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def give_terminal(pgid: int) -> None:
    """Make *pgid* the terminal's foreground group (SIGTTOU would stop a background caller)."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(0, pgid)
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, previous)


def start_watchdog(run_id: str, pgid: int, cgroup_procs: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_RUN_ID, ENV_BUNDLE)}
    args = [sys.executable, "-m", "forensics.supervise.watchdog", run_id, str(pgid)]
    if cgroup_procs:
        args.append(cgroup_procs)
    return subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
        close_fds=True,
    )


def exit_status(returncode: int) -> int:
    """The status a shell would report: 128+N for a death by signal N."""
    return 128 - returncode if returncode < 0 else returncode
