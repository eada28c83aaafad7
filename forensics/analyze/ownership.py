"""Which test a process belongs to: the process tree and the times in the journals decide.

The agent sets nothing in the environment of the processes a test starts; a process is tied to
the test that was running in the pytest process above it when it started.  A process started
by a process that a test started belongs to the same test, and so does a whole pytest session
run by a test (pytester, a plugin's own suite): the test of the *outermost* session owns it.
"""

from __future__ import annotations

from dataclasses import dataclass

from forensics.analyze.bundle_source import BundleData, ProcessRecord, TestRun

# Process trees are shallow; a cycle in a hostile bundle must not loop forever.
_MAX_DEPTH = 64


@dataclass(frozen=True)
class Owner:
    """The top-level pytest process and the test of it that started a process."""

    process: ProcessRecord
    test: TestRun


def test_at(rec: ProcessRecord, when: float | None) -> TestRun | None:
    """The test *rec* (a pytest process) was running at *when*."""
    if when is None:
        return None
    for test in reversed(rec.tests):
        if test.start <= when and (test.end is None or when <= test.end):
            return test
    return None


class Ownership:
    def __init__(self, data: BundleData) -> None:
        self.data = data
        self._memo: dict[int, Owner | None] = {}

    def owner(self, pid: int) -> Owner | None:
        """The outermost test that started *pid*, directly or through other processes."""
        if pid not in self._memo:
            self._memo[pid] = None  # breaks cycles while resolving
            self._memo[pid] = self._resolve(pid, 0)
        return self._memo[pid]

    def top_level(self, pid: int) -> bool:
        """Not started by any test: the pytest session of the run itself, or its xdist workers."""
        return self.owner(pid) is None

    def _resolve(self, pid: int, depth: int) -> Owner | None:
        rec = self.data.processes.get(pid)
        if rec is None or depth > _MAX_DEPTH or rec.ppid is None or rec.ppid == pid:
            return None
        parent = self.data.processes.get(rec.ppid)
        if parent is None:
            return None
        above = self.owner(parent.pid)
        if above is not None:
            return above
        if parent.role not in ("worker", "single"):
            # The controller starts workers, not tests' processes; anything else passes its
            # own owner down (resolved above).
            return None
        test = None
        if rec.parent_test is not None:
            # A forked child named its test itself.
            test = next((t for t in reversed(parent.tests) if t.nodeid == rec.parent_test), None)
        if test is None:
            test = test_at(parent, rec.start)
        return Owner(parent, test) if test is not None else None
