"""Starting the wrapped command: its own process group, death with the supervisor, agents on."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from forensics.agents.ptracer import ENV_SUPERVISOR_PID
from forensics.bundle import ENV_BUNDLE, ENV_RUN_ID

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

SITE_DIR = Path(__file__).resolve().parent.parent / "agents" / "site"

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


def _child_setup(parent_pid: int, extra: Callable[[], None] | None) -> None:  # pragma: no cover
    # Runs in the forked child, before exec.
    os.setpgid(0, 0)
    if extra is not None:
        extra()
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # The supervisor may have died between fork and prctl; then nobody would kill us.
    if os.getppid() != parent_pid:
        os._exit(137)


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
    setup: Callable[[], None] | None = None,
    *,
    stdin_devnull: bool = False,
) -> subprocess.Popen[bytes]:
    parent = os.getpid()
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL if stdin_devnull else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: _child_setup(parent, setup),
        close_fds=True,
    )


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
