"""Whose OOM kills a log shows: the tests' interpreters', or another program's on the machine.

A ``dmesg`` pasted after the tests holds every OOM report of the machine.  Only the kill of a
test interpreter (the kernel names it ``python3``, ``python3.12``, ``pytest``...: the names
:data:`.kernel.TEST_PROCESS` knows) can be the death of a worker; the kill of ``node``, a
database or a browser says that memory ran out, which is worth a note and never a cause.

The kernel writes a report over several lines and names its victim once, on the "Killed
process N (comm)" line; the lines before it (``invoked oom-killer``, ``oom-kill:``) and the
reaper's line after it (``reaped process N``) belong to that victim.
"""

from __future__ import annotations

import re

from forensics.analyze.logs.findings import KillEvent
from forensics.analyze.logs.kernel import TEST_PROCESS

# The victim named on the "oom-kill:" summary line (4.19+), for a report cut before its
# "Killed process" line.
_KV_TASK = re.compile(r"[,:]task=(?P<comm>[^,]{1,64}),pid=(?P<pid>\d{1,10})")


def split_oom(kills: list[KillEvent]) -> tuple[list[KillEvent], list[KillEvent]]:
    """The log's OOM lines, split into the reports whose victim can be a test process and the
    reports of other programs; order kept.  A report that names no victim stays with the
    tests' (the excerpt cut it: it may be theirs)."""
    tests: list[KillEvent] = []
    elsewhere: list[KillEvent] = []
    pending: list[KillEvent] = []  # a report's lines before its victim is named
    named: dict[int, bool] = {}  # victim pid -> a test process
    for kill in kills:
        if kill.kind != "oom":
            continue
        if kill.process is not None:  # "Killed process N (comm)": the report's end
            ours = TEST_PROCESS.match(kill.process) is not None
            if kill.pid is not None:
                named[kill.pid] = ours
            (tests if ours else elsewhere).extend([*pending, kill])
            pending = []
        elif kill.pid is not None and kill.pid in named:  # the reaper, after the kill
            (tests if named[kill.pid] else elsewhere).append(kill)
        else:
            pending.append(kill)
    for kill in pending:
        kv = _KV_TASK.search(kill.excerpt)
        ours = kv is None or TEST_PROCESS.match(kv.group("comm")) is not None
        (tests if ours else elsewhere).append(kill)
    return sorted(tests, key=_line), sorted(elsewhere, key=_line)


def _line(kill: KillEvent) -> int:
    return kill.line


def elsewhere_text(kills: list[KillEvent]) -> str | None:
    """Another program's OOM kill in words, or None when the tests' are all there is."""
    victims = [k for k in split_oom(kills)[1] if k.process is not None]
    if not victims:
        return None
    names = ", ".join(dict.fromkeys(f"{k.process} (pid {k.pid})" for k in victims[:3]))
    return (
        f"the kernel's OOM killer killed {names}, not a test process: the machine was out of memory"
    )
