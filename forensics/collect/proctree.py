"""Walking a process tree through /proc, cheaply.

``/proc/PID/task/TID/children`` costs one read per thread of the tree; psutil's ``children()``
reads /proc/*/stat of every process on the host to build a parent map (~3.5 ms for 84 processes
here, more on a busy CI host), which adds up for a supervisor that looks every half second.
Kernels without CONFIG_PROC_CHILDREN fall back to that full scan.
"""

from __future__ import annotations

import os
import time


def _ppid_from_stat(raw: str) -> int:
    # The command name may hold spaces and parentheses: fields start after the last ")".
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def _scan_children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                raw = fh.read().decode("utf-8", "replace")
            if _ppid_from_stat(raw) == pid:
                kids.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(kids)


def children_of(pid: int) -> list[int]:
    """Direct children of *pid* (empty when it has gone)."""
    kids: set[int] = set()
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                kids.update(int(c) for c in fh.read().split())
        except FileNotFoundError:
            if os.path.exists(f"/proc/{pid}/task/{tid}"):
                return _scan_children(pid)  # no CONFIG_PROC_CHILDREN
        except (OSError, ValueError):
            continue
    return sorted(kids)


def descendants(pids: list[int]) -> list[int]:
    """*pids* and everything they started, parents before children, each once."""
    out: list[int] = []
    seen: set[int] = set()
    queue = list(dict.fromkeys(pids))
    while queue:
        pid = queue.pop(0)
        if pid in seen:
            continue
        seen.add(pid)
        out.append(pid)
        queue.extend(children_of(pid))
    return out


def state_and_name(pid: int) -> tuple[str, str] | None:
    """The one-letter state and the command name of *pid*, or None when it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        return raw[raw.rindex(")") + 2 :].split()[0], name
    except (OSError, ValueError, IndexError):
        return None


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time *pid* (all its threads) has used, or None when it has gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read().decode("utf-8", "replace")
        fields = raw[raw.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS
    except (OSError, ValueError, IndexError):
        return None


def cpu_percent(pid: int, window: float = 0.3) -> float | None:
    """The share of one CPU *pid* used over the next *window* seconds (100 = one full core)."""
    before = cpu_seconds(pid)
    time.sleep(window)
    after = cpu_seconds(pid)
    if before is None or after is None:
        return None
    return round(100.0 * (after - before) / window, 1)


def rss_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
