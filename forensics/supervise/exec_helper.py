"""Runs between the supervisor's fork and the wrapped command: prepare this process, then exec.

The supervisor has threads (sampler, listener, watchdog pipe), and code that runs in a child
between ``fork`` and ``exec`` of a threaded parent (``preexec_fn``) can deadlock on a lock some
other thread held at the fork.  So the child execs this small program first, a fresh
single-threaded interpreter (``python -I -S``: no site, no PYTHONPATH, so no agent), which
joins the run's cgroup, asks for SIGKILL when the supervisor dies (``PR_SET_PDEATHSIG``), and
execs the command in the same process: the command's pid is the one the supervisor started.

    python -I -S exec_helper.py PARENT_PID STATUS_FD CGROUP_PROCS|- CORE_LIMIT|- -- COMMAND...

CORE_LIMIT raises the soft RLIMIT_CORE (bytes) that the command and everything it starts
inherit, so a crashing process of the run leaves a core the supervisor reads for native frames.

Standard library only.  An exec failure is written to STATUS_FD as ``errno:message`` (the fd
is close-on-exec, so the supervisor reads end-of-file when the exec succeeded).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _prepare(parent: int, cgroup_procs: str, core_limit: str) -> None:
    if core_limit != "-":
        import resource

        try:
            _, hard = resource.getrlimit(resource.RLIMIT_CORE)
            soft = int(core_limit)
            if hard != resource.RLIM_INFINITY:
                soft = min(soft, hard)
            resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))
        except (OSError, ValueError):
            pass  # the kernel's own fault line and the fault dumps remain
    if os.getpgrp() != os.getpid():
        os.setpgid(0, 0)  # Python < 3.11 has no Popen(process_group=0)
    if cgroup_procs != "-":
        try:
            with open(cgroup_procs, "w") as fh:
                fh.write("0")
        except OSError:
            pass  # the run goes on outside the cgroup; the supervisor notes what it lacks
    # dlopen(NULL): the interpreter's own symbols include libc's (find_library would run
    # ldconfig, 100 ms).
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The supervisor may have died before the prctl; then nothing would kill us.
    if os.getppid() != parent:
        os._exit(137)
    # The interpreter ignores these at start; an ignored disposition survives exec.
    for name in ("SIGPIPE", "SIGXFSZ"):
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_DFL)


def main(args: list[str]) -> None:
    parent, status_fd, cgroup_procs, core_limit, dashes, *argv = args
    assert dashes == "--" and argv
    fd = int(status_fd)
    os.set_inheritable(fd, False)
    _prepare(int(parent), cgroup_procs, core_limit)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(fd, f"{exc.errno}:{exc.strerror}".encode())
        os._exit(127 if isinstance(exc, FileNotFoundError) else 126)


if __name__ == "__main__":
    main(sys.argv[1:])
