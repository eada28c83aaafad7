"""Kernel lines pasted into a CI log (a ``dmesg`` step after the tests): the kernel's own word
on how a process died.

* ``python[1234]: segfault at 0 ip 00007f.. sp 00007ff.. error 4 in libfoo.so[7f..+1000]``
  and ``traps: python[1234] general protection fault ip:.. sp:.. error:0 in libc.so.6[..]``
  (``trap invalid opcode``, ``trap divide error``...): a fatal signal, and the library the
  faulting instruction was in.  Read with :func:`forensics.kernel_lines.parse_fault_line`,
  the parser the supervisor and the bundle's native facts use too.
* The OOM killer's report: read with :func:`forensics.kernel_lines.parse_oom`, the pure
  parser the supervisor uses on the live kernel log (it takes plain strings and strips dmesg's
  ``[ 630.5]`` stamps), so a pasted report and a collected one say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forensics.blame import RUNTIME_OBJECT
from forensics.kernel_lines import parse_fault_line, parse_oom

# The kernel names a process by its first 15 characters (``comm``): the interpreter running
# the tests (python3.11, pytest, pypy3), a thread Python 3.14 names after its
# ``threading.Thread`` ("Thread-3 (work)", "ThreadPoolExecutor-0_1"), or PyTorch's renamed main
# thread.  Any other name (node, java, a database) is another program on the machine, not
# evidence about the tests.
TEST_PROCESS = re.compile(
    r"^(?:python|pypy|pytest|py\.test|pt_main_thread|Thread-\d|ThreadPoolExecu|Dummy-\d)", re.I
)


@dataclass
class KernelFault:
    """The kernel's report of a fatal fault in a user process."""

    process: str
    pid: int
    signal: str
    what: str  # "segfault at 0", "general protection fault", "invalid opcode"
    library: str | None  # the mapping the faulting instruction was in
    line: int
    excerpt: str

    @property
    def blame(self) -> str | None:
        """The library to file the crash against: the faulting one unless it is the runtime."""
        return self.library if self.library and not RUNTIME_OBJECT.match(self.library) else None

    @property
    def of_tests(self) -> bool:
        """Whether the process that faulted can be the one running the tests."""
        return TEST_PROCESS.match(self.process) is not None

    def describe(self) -> str:
        where = f" in {self.library}" if self.library else ""
        note = self.signal
        if self.library and self.blame is None:
            note += "; the C runtime or the interpreter: look at what called it"
        return f"the kernel logged {self.process}[{self.pid}]: {self.what}{where} ({note})"


def kernel_fault(text: str, line: int, excerpt: str) -> KernelFault | None:
    """A segfault or trap line (read by :func:`forensics.kernel_lines.parse_fault_line`) whose
    fault delivers a known signal, or None."""
    fault = parse_fault_line(text)
    if fault is None or fault.signal is None:
        return None
    return KernelFault(
        fault.comm, fault.pid, fault.signal, fault.what, fault.library, line, excerpt
    )


def _mib(value: int | None) -> str | None:
    return f"{value / (1 << 20):.0f} MiB" if value is not None else None


def oom_summary(lines: list[str]) -> str | None:
    """One sentence on the last OOM kill the lines report: victim, its memory, the limit hit."""
    kills = parse_oom(lines)
    if not kills:
        return None
    kill = kills[-1]
    parts = [f"the kernel's OOM killer killed {kill.process} (pid {kill.pid}"]
    rss = _mib(kill.anon_rss_bytes)
    parts.append(f", anon-rss {rss})" if rss else ")")
    if kill.constraint == "memcg":
        limit = _mib(kill.memcg_limit_bytes)
        parts.append(
            f" at its memory cgroup's limit ({limit})" if limit else " at a memory cgroup's limit"
        )
    return "".join(parts)
