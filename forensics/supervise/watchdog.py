"""Ends every process of a run when its supervisor dies without finishing.

PR_SET_PDEATHSIG ends the supervisor's direct child, but not the xdist workers or the
processes tests start.  This small process, in a session of its own, holds the read end of a
pipe whose write end only the supervisor has.  End of file without the ``done`` word means the
supervisor was killed: it then kills the run's process group, every process in the run's cgroup,
and every process whose environment carries the run's id, until none is left.

Run as ``python -m forensics.supervise.watchdog RUN_ID PGID [CGROUP_PROCS_FILE]``.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from forensics.bundle import ENV_RUN_ID


def _marked_pids(run_id: str) -> set[int]:
    marker = f"{ENV_RUN_ID}={run_id}".encode()
    found: set[int] = set()
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if marker in environ.split(b"\0"):
            found.add(int(name))
    return found


def _cgroup_pids(procs_file: str | None) -> set[int]:
    if not procs_file:
        return set()
    try:
        with open(procs_file) as fh:
            return {int(line) for line in fh if line.strip()}
    except (OSError, ValueError):
        return set()


def kill_run(run_id: str, pgid: int | None, procs_file: str | None, deadline_s: float = 5.0) -> int:
    """SIGKILL the run's processes until none is found; returns how many were signalled."""
    killed: set[int] = set()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        targets = _marked_pids(run_id) | _cgroup_pids(procs_file)
        targets.discard(os.getpid())
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
        if not targets:
            break
        time.sleep(0.05)
    return len(killed)


def main(argv: list[str]) -> int:
    run_id, pgid = argv[0], int(argv[1])
    procs_file = argv[2] if len(argv) > 2 else None
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    data = b""
    while True:
        try:
            chunk = os.read(0, 64)
        except InterruptedError:
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    if b"done" in data:
        return 0
    kill_run(run_id, pgid, procs_file)
    if procs_file:
        _remove_cgroup(os.path.dirname(procs_file))
    # The signal capture's tracefs instance (and private mount) would outlive the run.
    from forensics.collect.sigtrace import remove_leftovers

    remove_leftovers(f"forensics-{run_id}")
    return 0


def _remove_cgroup(directory: str) -> None:
    """An emptied cgroup lingers until removed; the supervisor that made it is gone."""
    for _ in range(100):
        try:
            os.rmdir(directory)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
