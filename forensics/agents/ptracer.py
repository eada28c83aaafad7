"""Let the supervisor's stack taker attach to this process under Yama ``ptrace_scope=1``.

With scope 1 a process may only be ptraced by its ancestors.  py-spy is a child of the
supervisor, not an ancestor of the workers, so every attach is denied unless the tracee
declares a tracer: ``prctl(PR_SET_PTRACER, pid)`` allows *pid* and its descendants.  The
supervisor puts its pid in :data:`ENV_SUPERVISOR_PID`.  Scope 0 needs nothing; scopes 2 and 3
ignore the declaration (they need CAP_SYS_PTRACE or forbid ptrace), so the call is only made
at scope 1.  Standard library only, and cheap: one small file read, at most one prctl.
"""

from __future__ import annotations

import os

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

    Returns the errno of a failed prctl, 0 when it succeeded, None when no call was needed.
    """
    value = os.environ.get(ENV_SUPERVISOR_PID, "")
    if not value.isdigit() or yama_scope(path) != 1:
        return None
    import ctypes  # only at scope 1: most processes never pay for it

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PTRACER, ctypes.c_ulong(int(value)), 0, 0, 0) == 0:
        return 0
    return ctypes.get_errno()
