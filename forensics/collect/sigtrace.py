"""The kernel's signal tracepoints, read from a tracefs instance of the run's own.

``signal:signal_generate`` fires when a signal is sent (the current task is the sender, the
event names the receiver and what became of the signal); ``signal:signal_deliver`` fires when
the receiver takes it (the current task is the receiver, the event gives its disposition).
An instance (``instances/forensics-<run_id>``) has its own buffer, filters and clock, so the
global trace buffer and other users of tracefs are left alone.  Facts only: numbers and names.
"""

from __future__ import annotations

import functools
import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where tracefs usually is; the first one that holds ``instances`` is used.
_KNOWN_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
# Noise: a child's exit, a terminal resize, urgent socket data.  Filtered in the kernel.
NOISE_SIGNALS = (signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG)
BUFFER_KB = 2048

# include/trace/events/signal.h: what became of a generated signal.
RESULTS = {
    0: "delivered",  # queued to the receiver (a blocked signal is queued too, and waits)
    1: "ignored",
    2: "already-pending",
    3: "overflow-fail",
    4: "lose-info",
}
# include/uapi/asm-generic/siginfo.h: who raised it.
SI_CODES = {
    0: "user",  # SI_USER: kill(), raise()
    0x80: "kernel",  # SI_KERNEL
    -1: "queue",  # SI_QUEUE: sigqueue()
    -2: "timer",  # SI_TIMER: POSIX timer
    -3: "mesgq",
    -4: "asyncio",
    -5: "sigio",
    -6: "tkill",  # SI_TKILL: tkill()/tgkill(), pthread_kill
    -7: "dethread",
    -60: "asyncnl",
}
# Fault codes (si_code > 0) for the synchronous signals, as the kernel names them.
_FAULT_CODES: dict[int, dict[int, str]] = {
    int(signal.SIGSEGV): {1: "SEGV_MAPERR", 2: "SEGV_ACCERR", 3: "SEGV_BNDERR", 4: "SEGV_PKUERR"},
    int(signal.SIGBUS): {1: "BUS_ADRALN", 2: "BUS_ADRERR", 3: "BUS_OBJERR", 4: "BUS_MCEERR_AR"},
    int(signal.SIGILL): {1: "ILL_ILLOPC", 2: "ILL_ILLOPN", 3: "ILL_ILLADR", 4: "ILL_ILLTRP"},
    int(signal.SIGFPE): {1: "FPE_INTDIV", 2: "FPE_INTOVF", 3: "FPE_FLTDIV", 4: "FPE_FLTOVF"},
    int(signal.SIGTRAP): {1: "TRAP_BRKPT", 2: "TRAP_TRACE"},
}

_HEAD = (
    r"^\s*(?P<comm>.*?)-(?P<tid>\d+)\s+\(\s*(?P<tgid>\d+|-+)\)\s+\[\d+\]\s+\S+\s+(?P<ts>\d+\.\d+): "
)
# One expression per event, in the kernel's print format: a line is matched once, no field loop.
_GENERATE = re.compile(
    _HEAD + r"signal_generate: sig=(?P<sig>-?\d+) errno=(?P<errno>-?\d+) code=(?P<code>-?\d+) "
    r"comm=(?P<rcomm>.*?) pid=(?P<pid>\d+) grp=(?P<grp>\d+) res=(?P<res>\d+)"
)
_DELIVER = re.compile(
    _HEAD + r"signal_deliver: sig=(?P<sig>-?\d+) errno=(?P<errno>-?\d+) code=(?P<code>-?\d+) "
    r"sa_handler=(?P<handler>[0-9a-f]+) sa_flags=(?P<flags>[0-9a-f]+)"
)


@functools.cache
def code_name(sig: int, code: int) -> str:
    """si_code as a word: user, kernel, queue, timer, tkill, or the fault's own name."""
    if code > 0 and code != 0x80:
        return _FAULT_CODES.get(sig, {}).get(code, f"fault-{code}")
    return SI_CODES.get(code, str(code))


@functools.cache
def signal_label(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIG{sig}"


@dataclass
class SignalEvent:
    """One tracepoint hit, as the kernel reported it (times in epoch seconds)."""

    t: float
    event: str  # "generate" | "deliver"
    signal: str
    code: str
    # generate: the task that sent it (current) and the receiver; deliver: receiver only.
    sender_pid: int | None
    sender_tid: int | None
    sender_comm: str | None
    pid: int  # receiver: the thread (task) the kernel named
    comm: str | None
    group: bool | None = None
    result: str | None = None
    errno: int = 0
    disposition: str | None = None  # deliver: "default" | "ignore" | "handler"
    handler: int | None = None  # deliver: the handler's address in the receiver
    sa_flags: int | None = None
    # Identical signals read together (same task, fields and outcome) are one record: how
    # many, and the time of the last one.
    count: int = 1
    t_last: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.count == 1:
            del out["count"]
        if self.handler is not None:
            out["handler"] = f"0x{self.handler:x}"
        return out


def parse_line(line: str, clock_offset: float) -> SignalEvent | None:
    """One ``trace_pipe`` line (``record-tgid`` on) -> an event, or None for anything else."""
    m = _GENERATE.match(line) if "signal_generate" in line else _DELIVER.match(line)
    if m is None:
        return None
    sig, code = int(m["sig"]), int(m["code"])
    tid = int(m["tid"])
    tgid_text = m["tgid"]
    tgid = int(tgid_text) if tgid_text.isdigit() and int(tgid_text) > 0 else tid
    when = float(m["ts"]) + clock_offset
    comm = m["comm"].strip()
    if m.re is _GENERATE:
        return SignalEvent(
            t=when,
            event="generate",
            signal=signal_label(sig),
            code=code_name(sig, code),
            sender_pid=tgid,
            sender_tid=tid,
            sender_comm=comm,
            pid=int(m["pid"]),
            comm=m["rcomm"],
            group=m["grp"] == "1",
            result=RESULTS.get(int(m["res"]), m["res"]),
            errno=int(m["errno"]),
        )
    handler = int(m["handler"], 16)
    disposition = {0: "default", 1: "ignore"}.get(handler, "handler")
    return SignalEvent(
        t=when,
        event="deliver",
        signal=signal_label(sig),
        code=code_name(sig, code),
        sender_pid=None,
        sender_tid=None,
        sender_comm=None,
        pid=tgid,
        comm=comm,
        errno=int(m["errno"]),
        disposition=disposition,
        handler=handler if disposition == "handler" else None,
        sa_flags=int(m["flags"], 16),
    )


def boot_clock_offset() -> float:
    """Epoch seconds = CLOCK_BOOTTIME seconds + this (the instance's ``boot`` trace clock)."""
    return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)


class TraceInstance:
    """A tracefs instance with the signal events on, and a non-blocking reader of its pipe."""

    def __init__(self, root: Path, name: str, mounted_here: bool) -> None:
        self.root = root
        self.dir = root / "instances" / name
        self.mounted_here = mounted_here
        self.clock_offset = 0.0
        self._fd: int | None = None
        self._partial = b""
        self.closed = False

    @classmethod
    def open_or_reason(cls, name: str) -> TraceInstance | str:
        """The instance, ready to read; or why it cannot be had and what would grant it."""
        if os.geteuid() != 0:
            return "not root: tracefs instances and the signal tracepoints need root"
        root, mounted_here, why = _find_or_mount(name)
        if root is None:
            return why
        inst = cls(root, name, mounted_here)
        try:
            inst.dir.mkdir()
            _write(inst.dir / "buffer_size_kb", str(BUFFER_KB))
            clock = "boot"
            try:
                _write(inst.dir / "trace_clock", clock)
            except OSError:
                clock = "local"
            inst.clock_offset = boot_clock_offset() if clock == "boot" else _local_offset()
            _write(inst.dir / "options" / "record-tgid", "1")
            noise = " && ".join(f"sig != {int(s)}" for s in NOISE_SIGNALS)
            for event in ("signal_generate", "signal_deliver"):
                events = inst.dir / "events" / "signal" / event
                _write(events / "filter", noise)
                _write(events / "enable", "1")
            inst._fd = os.open(inst.dir / "trace_pipe", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            inst.close()
            return f"tracefs instance {inst.dir}: {exc.strerror or exc}"
        return inst

    def read(self, timeout: float) -> list[str]:
        """Complete lines that arrived, waiting at most ``timeout`` seconds for the first."""
        if self._fd is None:
            return []
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return []
        chunks = []
        while True:
            try:
                chunk = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        data = self._partial + b"".join(chunks)
        lines = data.split(b"\n")
        self._partial = lines.pop()
        return [ln.decode("utf-8", "replace") for ln in lines if ln]

    def stop_events(self) -> None:
        """No new events; what the buffer holds can still be read."""
        try:
            _write(self.dir / "events" / "signal" / "enable", "0")
        except OSError:
            pass

    def dropped(self) -> int:
        """Events lost because the buffer was full (``per_cpu/*/stats`` overrun)."""
        total = 0
        for stats in (self.dir / "per_cpu").glob("cpu*/stats"):
            try:
                for line in stats.read_text().splitlines():
                    if line.startswith("overrun:"):
                        total += int(line.split(":")[1])
            except (OSError, ValueError):
                continue
        return total

    def close(self) -> str | None:
        """Remove the instance, and unmount tracefs if we mounted it; why not, if it failed."""
        self.stop_events()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self.closed = True
        problem = None
        if self.dir.is_dir():
            try:
                self.dir.rmdir()
            except OSError as exc:
                problem = f"could not remove {self.dir}: {exc.strerror}"
        if self.mounted_here:
            problem = _unmount(self.root) or problem
        return problem


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _local_offset() -> float:
    # The ``local`` trace clock is sched_clock, close to CLOCK_MONOTONIC.
    return time.time() - time.clock_gettime(time.CLOCK_MONOTONIC)


def private_mount(name: str) -> Path:
    """Where a run mounts tracefs when nobody has: named after the run, so the watchdog can
    unmount it if the supervisor is killed."""
    return Path(tempfile.gettempdir()) / f"forensics-tracefs-{name}"


def _find_or_mount(name: str) -> tuple[Path | None, bool, str]:
    for candidate in _KNOWN_MOUNTS:
        if (Path(candidate) / "instances").is_dir():
            return Path(candidate), False, ""
    target = private_mount(name)
    try:
        target.mkdir(mode=0o700)  # not exist_ok: a directory someone else made is not ours
    except OSError as exc:
        return None, False, f"tracefs is not mounted and {target} cannot be made: {exc.strerror}"
    try:
        done = subprocess.run(
            ["mount", "-t", "tracefs", "nodev", str(target)],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        target.rmdir()
        return None, False, f"tracefs is not mounted and mount failed: {exc}"
    if done.returncode != 0 or not (target / "instances").is_dir():
        target.rmdir()
        why = done.stderr.strip() or "no instances directory"
        return None, False, f"tracefs is not mounted and could not be mounted: {why}"
    return target, True, ""


def _unmount(root: Path) -> str | None:
    try:
        done = subprocess.run(
            ["umount", str(root)], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not unmount {root}: {exc}"
    if done.returncode != 0:
        return f"could not unmount {root}: {done.stderr.strip()}"
    try:
        root.rmdir()
    except OSError:
        pass
    return None


def merge_key(line: str) -> tuple[str, str] | None:
    """What makes two lines the same signal: the task and everything after the event name."""
    at = line.find(": signal_")
    if at < 0:
        return None
    return line[: line.find("(")], line[at:]


def line_time(line: str, clock_offset: float) -> float | None:
    at = line.find(": signal_")
    try:
        return float(line[:at].rsplit(None, 1)[-1]) + clock_offset
    except (ValueError, IndexError):
        return None


def remove_leftovers(name: str) -> None:
    """After a supervisor was killed: its instance and its private mount, if they are left."""
    roots = [Path(m) for m in _KNOWN_MOUNTS]
    mount = private_mount(name)
    roots.append(mount)
    for root in roots:
        instance = root / "instances" / name
        if instance.is_dir():
            try:
                _write(instance / "events" / "signal" / "enable", "0")
            except OSError:
                pass
            try:
                instance.rmdir()
            except OSError:
                pass
    if os.path.ismount(mount):
        _unmount(mount)
