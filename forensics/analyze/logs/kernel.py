"""Kernel lines pasted into a CI log (a ``dmesg`` step after the tests): the kernel's own word
on how a process died.

* ``python[1234]: segfault at 0 ip 00007f.. sp 00007ff.. error 4 in libfoo.so[7f..+1000]``
  and ``traps: python[1234] general protection fault ip:.. sp:.. error:0 in libc.so.6[..]``
  (``trap invalid opcode``, ``trap divide error``...): a fatal signal, and the library the
  faulting instruction was in.
* The OOM killer's report: read with :func:`forensics.kernel_lines.parse_oom`, the pure
  parser the supervisor uses on the live kernel log (it takes plain strings and strips dmesg's
  ``[ 630.5]`` stamps), so a pasted report and a collected one say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from forensics.blame import RUNTIME_OBJECT
from forensics.kernel_lines import parse_oom

# "python[1234]: segfault at 0 ip 00007f3a sp 00007ffd error 4 in libfoo.so[7f3a0000+1000]
# likely on CPU 1 (core 1, socket 0)"; older kernels print the same without the CPU tail,
# newer ones "in libfoo.so[7f3a1000,7f3a0000+2000]".
# The name is bounded (the kernel keeps 15 characters of it): unanchored, an unbounded one
# is tried from every character of a hostile line and runs to its end from each (quadratic).
SEGFAULT = re.compile(
    r"(?P<comm>[^\s\[\]]{1,64})\[(?P<pid>\d{1,10})\]: segfault at (?P<addr>[0-9a-fA-F]+) "
    r"ip (?P<ip>[0-9a-fA-F]+) sp [0-9a-fA-F]+ error (?P<error>\d+)"
    r"(?: in (?P<lib>[^\s\[]+)\[)?"
)
# "traps: python[1234] general protection fault ip:7f3a sp:7ffd error:0 in libc.so.6[7f3a+1d]"
# "traps: python3[77] trap invalid opcode ip:.. sp:.. error:0 in libfoo.so[..]"
TRAPS = re.compile(
    r"traps: (?P<comm>[^\s\[\]]{1,64})\[(?P<pid>\d{1,10})\] (?:trap )?(?P<what>[a-z][a-z0-9 ]*?) "
    r"ip:(?P<ip>[0-9a-fA-F]+)(?:.*? in (?P<lib>[^\s\[]+)\[)?"
)
# The kernel names a process by its first 15 characters (``comm``): the interpreter running
# the tests (python3.11, pytest, pypy3), a thread Python 3.14 names after its
# ``threading.Thread`` ("Thread-3 (work)", "ThreadPoolExecutor-0_1"), or PyTorch's renamed main
# thread.  Any other name (node, java, a database) is another program on the machine, not
# evidence about the tests.
TEST_PROCESS = re.compile(
    r"^(?:python|pypy|pytest|py\.test|pt_main_thread|Thread-\d|ThreadPoolExecu|Dummy-\d)", re.I
)
# What each trap delivers to the process (arch/x86/kernel/traps.c).
TRAP_SIGNALS = {
    "general protection fault": "SIGSEGV",
    "general protection": "SIGSEGV",
    "invalid opcode": "SIGILL",
    "divide error": "SIGFPE",
    "int3": "SIGTRAP",
    "stack segment": "SIGBUS",
    "alignment check": "SIGBUS",
}


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
    """A segfault or trap line, or None."""
    seg = SEGFAULT.search(text)
    if seg is not None:
        return KernelFault(
            seg.group("comm"),
            int(seg.group("pid")),
            "SIGSEGV",
            f"segfault at {seg.group('addr')}",
            _library(seg.group("lib")),
            line,
            excerpt,
        )
    trap = TRAPS.search(text)
    if trap is not None:
        what = trap.group("what")
        signal = TRAP_SIGNALS.get(what)
        if signal is None:
            return None
        return KernelFault(
            trap.group("comm"),
            int(trap.group("pid")),
            signal,
            what,
            _library(trap.group("lib")),
            line,
            excerpt,
        )
    return None


def _library(path: str | None) -> str | None:
    # The kernel prints the mapping's file name; the program itself is as telling as a library.
    return path.rsplit("/", 1)[-1] if path else None


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
