"""Kernel log lines, the OOM killer's reports and the fault lines in them: pure parsers of text.

Shared by the supervisor, which reads the kernel's log while a run goes, and the analyzer,
which reads kernel lines pasted into CI logs and the ones a bundle kept; neither side owns the
format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class KernelLine:
    time: float  # epoch seconds, from the kernel's monotonic stamp
    monotonic_us: int
    level: int  # 0 emerg .. 7 debug
    text: str
    facility: int = 0  # 0 is the kernel; other values were written by user space
    seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        """The line as dmesg prints it, for system/kernel.log."""
        return f"<{self.level}>[{self.monotonic_us / 1e6:14.6f}] {self.text}"


@dataclass
class OomKill:
    pid: int
    process: str
    constraint: str | None = None  # "memcg", "global", "cpuset", "mempolicy"
    memcg: str | None = None  # the cgroup whose limit was hit (oom_memcg=, or "limit of")
    task_memcg: str | None = None  # the victim's own cgroup
    anon_rss_bytes: int | None = None
    file_rss_bytes: int | None = None
    shmem_rss_bytes: int | None = None
    total_vm_bytes: int | None = None
    uid: int | None = None
    oom_score_adj: int | None = None
    invoked_by: str | None = None  # the task whose allocation triggered the OOM killer
    gfp_mask: str | None = None
    order: int | None = None
    memcg_usage_bytes: int | None = None  # from "memory: usage NkB, limit NkB, failcnt N"
    memcg_limit_bytes: int | None = None
    time: float | None = None
    monotonic_us: int | None = None
    lines: list[str] = field(default_factory=list)  # the report lines that were parsed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_CONSTRAINTS = {
    "CONSTRAINT_NONE": "global",
    "CONSTRAINT_MEMCG": "memcg",
    "CONSTRAINT_CPUSET": "cpuset",
    "CONSTRAINT_MEMORY_POLICY": "mempolicy",
}

# "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
# (4.x adds ", nodemask=(null)" and older kernels print "oom_adj=0, oom_score_adj=0").
_INVOKED = re.compile(
    r"^(?P<task>.+?) invoked oom-killer: gfp_mask=(?P<gfp>\S+?),(?: nodemask=\S+,)? "
    r"order=(?P<order>-?\d+)"
)
# "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,
#  oom_memcg=/a,task_memcg=/a,task=python3,pid=5243,uid=0"  (4.19+; "global_oom" for global)
_OOM_KILL_KV = re.compile(r"^oom-kill:(?P<kv>.*)$")
# 5.x+: "Out of memory: Killed process N (comm) total-vm:..." / "Memory cgroup out of memory: ..."
# <= 5.0: "Killed process N (comm) total-vm:NkB, anon-rss:NkB, file-rss:NkB, shmem-rss:NkB"
_KILLED = re.compile(
    r"(?P<prefix>Out of memory|Memory cgroup out of memory)?:?\s*"
    r"Killed process (?P<pid>\d+) \((?P<comm>.*?)\)(?P<rest>.*)$"
)
# <= 4.x: "Task in /a killed as a result of limit of /a"
_TASK_IN = re.compile(r"^Task in (?P<task>\S+) killed as a result of limit of (?P<memcg>\S+)")
# "memory: usage 153600kB, limit 153600kB, failcnt 48"
_USAGE = re.compile(r"^memory: usage (?P<usage>\d+)kB, limit (?P<limit>\d+)kB")
_STATS_FOR = re.compile(r"^Memory cgroup stats for (?P<memcg>\S+?):?$")
_KB_FIELD = re.compile(r"(total-vm|anon-rss|file-rss|shmem-rss|pgtables):(\d+)kB")
_UID = re.compile(r"UID:(\d+)")
_ADJ = re.compile(r"oom_score_adj:(-?\d+)")

# A memcg limit of PAGE_COUNTER_MAX pages prints as 9007199254740988kB: no limit.
_KB_UNLIMITED = 1 << 50


def _apply_oom_kill_kv(kill: OomKill, kv: str) -> None:
    pairs: dict[str, str] = {}
    global_oom = False
    for part in kv.split(","):
        key, sep, value = part.partition("=")
        if sep:
            pairs[key] = value
        elif part == "global_oom":
            global_oom = True
    if "constraint" in pairs:
        kill.constraint = _CONSTRAINTS.get(pairs["constraint"], pairs["constraint"].lower())
    elif global_oom:
        kill.constraint = "global"
    kill.memcg = pairs.get("oom_memcg", kill.memcg)
    kill.task_memcg = pairs.get("task_memcg", kill.task_memcg)
    if "uid" in pairs and pairs["uid"].isdigit():
        kill.uid = int(pairs["uid"])


def parse_oom(lines: Iterable[KernelLine | str]) -> list[OomKill]:
    """The OOM kills reported in *lines*, oldest first, one per victim.

    The kernel writes a report over many lines; context lines (invoked by, memcg usage and
    limit, the oom-kill summary) come before the "Killed process" line that ends it, so they
    are collected and attached to the next kill.
    """
    kills: list[OomKill] = []
    pending: dict[str, Any] = {}
    pending_lines: list[str] = []
    kv_line: str | None = None

    for item in lines:
        line = item if isinstance(item, KernelLine) else None
        text = (item.text if isinstance(item, KernelLine) else item).strip()
        # dmesg-style prefixes ("[  630.5] ", "<3>") when plain strings come from a log file.
        text = re.sub(r"^(?:<\d+>)?(?:\[\s*\d+\.\d+\]\s*)?", "", text)

        if m := _INVOKED.search(text):
            pending = {"invoked_by": m["task"], "gfp_mask": m["gfp"], "order": int(m["order"])}
            pending_lines = [text]
            kv_line = None
        elif m := _USAGE.match(text):
            pending["memcg_usage_bytes"] = int(m["usage"]) * 1024
            limit = int(m["limit"])
            pending["memcg_limit_bytes"] = limit * 1024 if limit < _KB_UNLIMITED else None
            pending_lines.append(text)
        elif m := _TASK_IN.match(text):
            pending["task_memcg"], pending["memcg"] = m["task"], m["memcg"]
            pending["constraint"] = "memcg"
            pending_lines.append(text)
        elif m := _STATS_FOR.match(text):
            pending.setdefault("memcg", m["memcg"])
            pending_lines.append(text)
        elif _OOM_KILL_KV.match(text):
            kv_line = text
            pending_lines.append(text)
        elif "Kill process" in text and "sacrifice child" in text:
            # 4.x announces its choice first; the "Killed process" line that follows is the
            # victim (possibly a child of the chosen one).
            pending_lines.append(text)
            memcg = text.startswith("Memory cgroup out of memory")
            pending.setdefault("constraint", "memcg" if memcg else "global")
        elif (m := _KILLED.search(text)) and "reaped process" not in text:
            kill = OomKill(pid=int(m["pid"]), process=m["comm"])
            for key, value in pending.items():
                setattr(kill, key, value)
            if kv_line is not None:
                _apply_oom_kill_kv(kill, kv_line[len("oom-kill:") :])
            if kill.constraint is None and m["prefix"]:
                kill.constraint = "memcg" if m["prefix"].startswith("Memory cgroup") else "global"
            sizes = {k: int(v) * 1024 for k, v in _KB_FIELD.findall(m["rest"])}
            kill.total_vm_bytes = sizes.get("total-vm")
            kill.anon_rss_bytes = sizes.get("anon-rss")
            kill.file_rss_bytes = sizes.get("file-rss")
            kill.shmem_rss_bytes = sizes.get("shmem-rss")
            if u := _UID.search(m["rest"]):
                kill.uid = int(u[1])
            if a := _ADJ.search(m["rest"]):
                kill.oom_score_adj = int(a[1])
            if line is not None:
                kill.time, kill.monotonic_us = line.time, line.monotonic_us
            kill.lines = [*pending_lines, text]
            kills.append(kill)
            pending, pending_lines, kv_line = {}, [], None
    return kills


_OOM_START = re.compile(r"invoked oom-killer:")
_OOM_END = re.compile(r"Killed process \d+|reaped process \d+")


def oom_report_lines(lines: Iterable[KernelLine]) -> list[KernelLine]:
    """The lines that belong to OOM reports (from "invoked oom-killer" to "Killed process").

    What the supervisor keeps in system/kernel.log: the whole report, with the per-task table
    and the memcg stats a reader needs, but not the rest of a busy kernel log.
    """
    out: list[KernelLine] = []
    inside = False
    for line in lines:
        if _OOM_START.search(line.text):
            inside = True
        if inside or _OOM_END.search(line.text) or line.text.startswith("oom-kill:"):
            out.append(line)
        if _OOM_END.search(line.text):
            inside = False
    return out


# --- the kernel's word on a fatal fault in a user process ------------------------------------

# What each trap delivers to the process (arch/x86/kernel/traps.c); "general protection" is
# how kernels before 4.x named the fault.
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
class FaultLine:
    """One ``segfault at`` or ``traps:`` line: which process faulted, where, and in what file.

    ``python3[6000]: segfault at 8 ip 00007f88.. sp 00007ffe.. error 4 in libc.so.6[16d8a2,
    7f8812444000+156000] likely on CPU 0 (core 0, socket 0)``; ``traps: python3[6000] general
    protection fault ip:7fef.. sp:7fff.. error:0 in libc.so.6[..]``; ``trap invalid opcode``,
    ``trap divide error``, ``trap int3``.
    """

    pid: int
    comm: str  # the task's name: at most 15 characters, a thread's own name if it set one
    kind: str  # "segfault", or the trap: "general protection fault", "invalid opcode", ...
    signal: str | None  # what the fault delivers; None for a trap the table above lacks
    ip: int
    sp: int | None = None
    error: int | None = None  # the hardware's error code (printed in hex)
    address: int | None = None  # the data address a segfault touched ("segfault at 8")
    library: str | None = None  # the file the ip was in, by its name (the program, or a .so)
    # The ip's offset in that file: kernels since 6.x print it before the mapping
    # ("[16d8a2,7f88..+156000]"); older ones print the mapping alone ("[7f88..+156000]").
    offset: int | None = None
    mapping_start: int | None = None
    mapping_size: int | None = None
    cpu: int | None = None  # "likely on CPU N" (6.x)

    @property
    def what(self) -> str:
        """``segfault at 8``, ``general protection fault``: the fault in the kernel's words."""
        return f"segfault at {self.address:x}" if self.address is not None else self.kind


_HEX = "[0-9a-fA-F]{1,16}"
# The task's name, right before "[pid]".  No blank in it but for the name Python (3.14+)
# gives a thread with a target, "Thread-3 (work)": a name with blanks cannot be told from the
# text before it, so that one form is read whole and any other name is the word before "[".
_COMM = r"(?P<comm>Thread-\d{1,7} \([^\[\]\n]{0,12}|[^\s\[\]]{1,64})"
# What print_vma_addr() adds: " in <file>[<offset>,<start>+<size>]" (6.x) or
# " in <file>[<start>+<size>]"; then "likely on CPU N (core N, socket N)" (6.x segfaults).
# Before 4.x the file name came from d_path and could end in " (deleted)".
_WHERE = re.compile(
    rf" in (?P<lib>[^\[\]\n]{{1,255}})\[(?:(?P<offset>{_HEX}),)?(?P<start>{_HEX})?"
    rf"(?:\+(?P<size>{_HEX}))?\]?"
)
_CPU = re.compile(r"\s*likely on CPU (?P<cpu>\d{1,6})")
# Each form is found by its fixed words first; the name and pid are then read back from there,
# and only a bounded stretch of text, so a hostile line costs no more than its length.
_SEGFAULT_AT = "]: segfault at "
_SEGFAULT_HEAD = re.compile(_COMM + r"\[(?P<pid>\d{1,10})$")
_SEGFAULT_TAIL = re.compile(
    rf"segfault at (?P<addr>{_HEX}) ip (?P<ip>{_HEX}) sp (?P<sp>{_HEX}) error (?P<error>{_HEX})"
)
_TRAP_IP = " ip:"
# Kernels since 3.x prefix the line with "traps: "; older ones printed "python[1234] general
# protection ip:..." bare, which is taken only for a trap of the table.
_TRAP_HEAD = re.compile(
    r"(?P<traps>traps: )?" + _COMM + r"\[(?P<pid>\d{1,10})\] (?:trap )?"
    r"(?P<kind>[a-z][a-z0-9 ]{0,40}?)$"
)
_TRAP_TAIL = re.compile(rf"ip:(?P<ip>{_HEX})(?: sp:(?P<sp>{_HEX}))?(?: error:(?P<error>{_HEX}))?")
_HEAD_CHARS = 160  # the name (64) and the pid, "traps: ", the trap's name (40)
_TRIES = 8  # occurrences of the fixed words tried in one line


def parse_fault_line(text: str) -> FaultLine | None:
    """The fault a kernel ``segfault at`` / ``traps:`` line reports, or None for any other
    line (a dmesg stamp, a syslog or journal prefix before it is fine)."""
    at = -1
    for _ in range(_TRIES):
        at = text.find(_SEGFAULT_AT, at + 1)
        if at < 0:
            break
        head = _SEGFAULT_HEAD.search(text, max(0, at - _HEAD_CHARS), at)
        tail = _SEGFAULT_TAIL.match(text, at + 3)
        if head is not None and tail is not None:
            line = FaultLine(
                pid=int(head["pid"]),
                comm=head["comm"],
                kind="segfault",
                signal="SIGSEGV",
                ip=int(tail["ip"], 16),
                sp=int(tail["sp"], 16),
                error=int(tail["error"], 16),
                address=int(tail["addr"], 16),
            )
            _where(line, text, tail.end())
            return line
    at = -1
    for _ in range(_TRIES):
        at = text.find(_TRAP_IP, at + 1)
        if at < 0:
            break
        head = _TRAP_HEAD.search(text, max(0, at - _HEAD_CHARS), at)
        tail = _TRAP_TAIL.match(text, at + 1)
        if head is None or tail is None:
            continue
        kind = head["kind"]
        if head["traps"] is None and kind not in TRAP_SIGNALS:
            continue  # "name[12] bound ip:10.0.0.1" is not the kernel's
        line = FaultLine(
            pid=int(head["pid"]),
            comm=head["comm"],
            kind=kind,
            signal=TRAP_SIGNALS.get(kind),
            ip=int(tail["ip"], 16),
            sp=int(tail["sp"], 16) if tail["sp"] else None,
            error=int(tail["error"], 16) if tail["error"] else None,
        )
        _where(line, text, tail.end())
        return line
    return None


def _where(line: FaultLine, text: str, end: int) -> None:
    where = _WHERE.match(text, end)
    if where is not None:
        # The kernel prints the file's name; a path is cut to it all the same.
        name = where["lib"].removesuffix(" (deleted)").rsplit("/", 1)[-1]
        line.library = name or None
        line.offset = int(where["offset"], 16) if where["offset"] else None
        line.mapping_start = int(where["start"], 16) if where["start"] else None
        line.mapping_size = int(where["size"], 16) if where["size"] else None
        end = where.end()
    cpu = _CPU.match(text, end)
    if cpu is not None:
        line.cpu = int(cpu["cpu"])
