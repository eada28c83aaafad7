"""Kernel log lines of the run's time window, and the OOM kills they report.

Sources, in order of preference: /dev/kmsg (structured records, readable without spawning a
process, positioned at the end at open so only the run's lines are read), then
``dmesg --raw`` and ``journalctl -k`` when /dev/kmsg is not readable (for example
``kernel.dmesg_restrict`` for kmsg but a journal the user may read).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

KMSG = "/dev/kmsg"
# A kmsg record is at most ~1 KiB of text plus its dictionary; a short buffer yields EINVAL.
_READ_SIZE = 16384
# A burst bigger than this between two polls is cut; the OOM report is ~100 records.
_MAX_RECORDS_PER_READ = 20000


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


def _clock_offset() -> float:
    # printk stamps with local_clock(), which tracks CLOCK_MONOTONIC (not /proc/uptime's
    # CLOCK_BOOTTIME, which also counts suspend); epoch = monotonic + offset.
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


_KMSG_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


def parse_kmsg_record(raw: bytes, offset: float) -> KernelLine | None:
    """Parse one /dev/kmsg record: ``prio,seq,usec,flags[,...];text`` then `` KEY=VALUE`` lines."""
    text = raw.decode("utf-8", "replace")
    head, sep, rest = text.partition(";")
    if not sep:
        return None
    fields = head.split(",")
    try:
        prio, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None
    message = rest.split("\n", 1)[0]  # continuation lines are the device dictionary
    # The kernel escapes non-printable bytes as \xNN; undo it only for the printable ASCII range.
    message = _KMSG_ESCAPE.sub(
        lambda m: chr(int(m.group(1), 16)) if 32 <= int(m.group(1), 16) < 127 else m.group(0),
        message,
    )
    return KernelLine(
        time=usec / 1e6 + offset,
        monotonic_us=usec,
        level=prio & 7,
        facility=prio >> 3,
        seq=seq,
        text=message,
    )


_DMESG_RAW = re.compile(r"^<(\d+)>\[\s*(\d+)\.(\d+)\]\s?(.*)$")


def parse_dmesg_raw(text: str, offset: float) -> list[KernelLine]:
    """Parse ``dmesg --raw`` output: ``<prio>[ seconds.micros] text``."""
    lines = []
    for raw in text.splitlines():
        m = _DMESG_RAW.match(raw)
        if not m:
            continue
        prio = int(m.group(1))
        usec = int(m.group(2)) * 1_000_000 + int(m.group(3).ljust(6, "0")[:6])
        lines.append(
            KernelLine(usec / 1e6 + offset, usec, prio & 7, m.group(4), facility=prio >> 3)
        )
    return lines


def parse_journal_json(text: str) -> list[KernelLine]:
    """Parse ``journalctl -k -o json`` output (one JSON object per line)."""
    lines = []
    for raw in text.splitlines():
        try:
            rec = json.loads(raw)
            message = rec["MESSAGE"]
            if isinstance(message, list):  # the journal stores non-UTF-8 text as a byte list
                message = bytes(message).decode("utf-8", "replace")
            real = int(rec["__REALTIME_TIMESTAMP"]) / 1e6
            mono = int(rec.get("_SOURCE_MONOTONIC_TIMESTAMP") or rec["__MONOTONIC_TIMESTAMP"])
            level = int(rec.get("PRIORITY", 6))
        except (ValueError, KeyError, TypeError):
            continue
        lines.append(KernelLine(real, mono, level, str(message)))
    return lines


class KernelLog:
    """New kernel log lines since :meth:`open`; call :meth:`read_new` periodically."""

    def __init__(self, source: str, fd: int | None = None) -> None:
        self.source = source  # "kmsg", "dmesg" or "journal"
        self._fd = fd
        self._offset = _clock_offset()
        self.start_monotonic_us = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1e6)
        self.start_time = time.time()
        self._last_us = self.start_monotonic_us
        self.dropped = 0  # records overwritten in the ring buffer before we read them

    @classmethod
    def open(cls) -> KernelLog | None:
        made = cls.open_or_reason()
        return made if isinstance(made, KernelLog) else None

    @classmethod
    def open_or_reason(cls) -> KernelLog | str:
        """A reader positioned at the end of the kernel log, or why none is readable."""
        try:
            fd = os.open(KMSG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            kmsg_error = f"{KMSG}: {exc.strerror}"
        else:
            os.lseek(fd, 0, os.SEEK_END)
            return cls("kmsg", fd)
        reasons = [kmsg_error]
        for source, probe in (
            ("dmesg", ["dmesg", "--raw"]),
            ("journal", ["journalctl", "-k", "-n", "1", "-o", "json", "-q", "--no-pager"]),
        ):
            ok, why = _probe(probe)
            if ok:
                return cls(source)
            reasons.append(why)
        return "no kernel log readable: " + "; ".join(reasons)

    def read_new(self) -> list[KernelLine]:
        if self.source == "kmsg":
            return self._read_kmsg()
        if self.source == "dmesg":
            # `--kernel` with `--raw` works only on /dev/kmsg, which this source is the
            # fallback for (syslog(2) is read instead): filter on the facility here.
            raw = parse_dmesg_raw(_run(["dmesg", "--raw"]), self._offset)
            lines = [ln for ln in raw if ln.facility == 0]
        else:
            since = f"@{int(self.start_time)}"
            out = _run(["journalctl", "-k", "-o", "json", "-q", "--no-pager", "--since", since])
            lines = parse_journal_json(out)
        # Polled sources return the whole buffer each time; keep what is newer than last time.
        new = [ln for ln in lines if ln.monotonic_us > self._last_us]
        if new:
            self._last_us = max(ln.monotonic_us for ln in new)
        return new

    def _read_kmsg(self) -> list[KernelLine]:
        if self._fd is None:
            return []
        out: list[KernelLine] = []
        while len(out) < _MAX_RECORDS_PER_READ:
            try:
                raw = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            except BrokenPipeError:
                # The ring buffer overwrote records we had not read; the next read resumes at
                # the oldest record still present.
                self.dropped += 1
                continue
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                break
            if not raw:
                break
            line = parse_kmsg_record(raw, self._offset)
            if line is not None:
                out.append(line)
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return proc.stdout.decode("utf-8", "replace")


def _probe(argv: list[str]) -> tuple[bool, str]:
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]}: not installed"
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{argv[0]}: {exc}"
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        return False, f"{argv[0]}: {err[-1] if err else f'exit status {proc.returncode}'}"
    if not proc.stdout.strip():
        # A booted kernel always has lines; none means none are readable to us (journalctl
        # exits 0 without a readable journal).
        fix = (
            "not in the systemd-journal or adm group, or no journal"
            if argv[0] == "journalctl"
            else "kernel.dmesg_restrict=1 needs CAP_SYSLOG"
        )
        return False, f"{argv[0]}: no kernel lines readable ({fix})"
    return True, ""


# --- OOM kills -------------------------------------------------------------------------------


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
