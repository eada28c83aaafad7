"""Kernel log lines and the OOM killer's reports in them: pure parsers of text.

Shared by the supervisor, which reads the kernel's log while a run goes, and the analyzer,
which reads kernel lines pasted into CI logs; neither side owns the format.
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
