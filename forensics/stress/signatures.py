"""The grouping signature of an incident in the stress table.

Most incidents keep the key ``forensics analyze`` and the bundle triage give them, so a stress
table and an analyze table of the same failures show the same keys.  A hang's key is where it
is stuck instead: the innermost frames of the thread that was running the test, named by
function and file only (no line numbers, addresses, pids or temporary directories), so hangs in
the same place group together across iterations and xdist levels, and two hangs of one test in
different places do not.
"""

from __future__ import annotations

import os
import re

from forensics.analyze.logs.signatures import MAX_SIGNATURE, normalize
from forensics.model import Incident, Stack, is_harness_frame

# Where a stuck thread waits is usually the standard library (a lock, a pipe, a child's exit);
# the frames of the suite or library that called it say which wait it is.  Keep frames up to
# the second one outside the standard library, and never more than this many.
_MAX_FRAMES = 6
_CALLERS = 2
_STDLIB = re.compile(r"/lib/python\d+\.\d+/(?!(?:site|dist)-packages/)(?P<rest>.+)$")
_PACKAGES = re.compile(r"/(?:site|dist)-packages/(?P<rest>.+)$")
# A thread that passes through pytest's runner is the one running the test.
_TEST_RUNNER = re.compile(r"/_pytest/(?:runner|python|fixtures)\.py$")


def signature_of(incident: Incident, cwd: str | None = None) -> str:
    if incident.cause == "hang":
        where = hang_frames(incident, cwd)
        if where:
            return f"hang at {where}"[:MAX_SIGNATURE]
    return incident.signature or normalize(f"{incident.cause} {incident.summary}")


def hang_frames(incident: Incident, cwd: str | None = None) -> str:
    """``func (file) < caller (file) ...`` of the stuck thread(s), innermost first; "" if none."""
    own = [s for s in incident.stacks if incident.pid is None or s.pid == incident.pid]
    threads = _stuck_threads(own)
    keys = sorted({key for key in (_thread_key(s, cwd) for s in threads) if key})
    return " | ".join(keys)


def _stuck_threads(stacks: list[Stack]) -> list[Stack]:
    running = [s for s in stacks if any(_TEST_RUNNER.search(f.file or "") for f in s.frames)]
    if running:
        return running
    main = [s for s in stacks if "MainThread" in s.thread]
    return main or stacks


def _thread_key(stack: Stack, cwd: str | None) -> str:
    names: list[str] = []
    callers = 0
    for frame in stack.frames:  # innermost first, as py-spy and faulthandler list them
        if frame.native or is_harness_frame(frame):
            continue
        file = frame.file or "?"
        names.append(f"{frame.name} ({_short_file(file, cwd)})")
        if not _STDLIB.search(file) and not file.startswith("<frozen"):
            callers += 1
        if callers >= _CALLERS or len(names) >= _MAX_FRAMES:
            break
    return " < ".join(names)


def _short_file(path: str, cwd: str | None) -> str:
    """A name for *path* that is the same in every run: no home, venv or temporary prefix."""
    for pattern in (_PACKAGES, _STDLIB):
        found = pattern.search(path)
        if found:
            return found.group("rest")
    if cwd and os.path.isabs(path) and path.startswith(cwd.rstrip("/") + "/"):
        return path[len(cwd.rstrip("/")) + 1 :]
    return os.path.basename(path) or path
