"""What /proc says about one process: state, wchan, signal masks, threads, children, full pipes.

Everything here is read from outside the process and never changes it: queue lengths are taken
with FIONREAD on a duplicate of the descriptor, which reports the bytes without consuming them.
Every field is best-effort: a process may exit mid-read, and containers hide parts of /proc
(``/proc/PID/stack`` needs CAP_SYS_ADMIN, ``wchan`` is ``0`` under kptr restrictions).  What
could not be read is recorded with the reason in :attr:`ProcInfo.unreadable`.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import select
import signal
import socket
import struct
import termios
from dataclasses import asdict, dataclass, field
from typing import Any

from forensics.collect.proctree import children_of

STATE_MEANINGS = {
    "R": "running",
    "S": "sleeping (interruptible)",
    "D": "uninterruptible sleep (D-state)",
    "Z": "zombie (exited, not yet reaped by its parent)",
    "T": "stopped by a signal",
    "t": "stopped by a tracer",
    "X": "dead",
    "I": "idle kernel thread",
    "P": "parked",
    "W": "waking",
    "K": "wakekill",
}

# Python's signal module does not name the realtime signals; glibc reserves 32 and 33.
_SIGRTMIN = int(signal.SIGRTMIN)
_SIGRTMAX = int(signal.SIGRTMAX)
_NAMES = {int(s): s.name for s in signal.Signals if s.name not in ("SIGRTMIN", "SIGRTMAX")}
# Aliases (SIGIOT, SIGPOLL, SIGCLD) share a number; the enum keeps the first, which we want.

F_GETPIPE_SZ = 1032  # from <linux/fcntl.h>; Python 3.10+ exposes it, 3.9 does not
SYS_PIDFD_GETFD = 438  # same number on every architecture (unified syscall table since 5.x)


def signal_name(num: int) -> str:
    if num in _NAMES:
        return _NAMES[num]
    if _SIGRTMIN <= num <= _SIGRTMAX:
        # Name realtime signals from the nearer end, as strace and the kernel docs do.
        low, high = num - _SIGRTMIN, _SIGRTMAX - num
        if low <= high:
            return f"SIGRTMIN+{low}" if low else "SIGRTMIN"
        return f"SIGRTMAX-{high}" if high else "SIGRTMAX"
    return f"SIG{num}"


def decode_sigmask(hexmask: str) -> list[str]:
    """Decode a /proc status mask (``SigBlk: 0000000000000002``) to names, by signal number.

    Bit N-1 stands for signal N.  Sorted by number rather than name so SIGINT stays before
    SIGTERM, the order people read them in.
    """
    try:
        mask = int(hexmask.strip(), 16)
    except ValueError:
        return []
    return [signal_name(bit + 1) for bit in range(mask.bit_length()) if mask >> bit & 1]


@dataclass
class ThreadInfo:
    tid: int
    name: str
    state: str
    wchan: str | None
    # Per thread, because blocked masks and thread-directed pending signals belong to threads.
    blocked: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)


@dataclass
class Signals:
    pending: list[str] = field(default_factory=list)  # SigPnd of the main thread
    shared_pending: list[str] = field(default_factory=list)  # ShdPnd: for the whole process
    blocked: list[str] = field(default_factory=list)  # SigBlk of the main thread
    ignored: list[str] = field(default_factory=list)  # SigIgn: process-wide
    caught: list[str] = field(default_factory=list)  # SigCgt: a handler is installed


@dataclass
class PipeInfo:
    fd: int
    kind: str  # "pipe" | "socket"
    inode: int
    mode: str  # "r", "w", "rw"
    queued: int | None  # bytes waiting to be read, None when unknown
    capacity: int | None  # pipe size (F_GETPIPE_SZ) or the socket's receive buffer
    full: bool
    # Whether a write would not block right now (poll POLLOUT), when we could check.
    writable: bool | None = None
    # The same process holds the other end too (a self-pipe, e.g. a signal wakeup fd).
    self_pipe: bool = False
    note: str | None = None


@dataclass
class ProcInfo:
    pid: int
    ppid: int | None = None
    name: str | None = None
    cmdline: list[str] = field(default_factory=list)
    state: str | None = None
    state_meaning: str | None = None
    d_state: bool = False
    wchan: str | None = None
    kernel_stack: list[str] | None = None
    thread_count: int = 0
    threads: list[ThreadInfo] = field(default_factory=list)
    children: list[int] = field(default_factory=list)
    signals: Signals = field(default_factory=Signals)
    pipes: list[PipeInfo] = field(default_factory=list)
    # Field -> why it could not be read (permission, process gone, hidden by the kernel).
    unreadable: dict[str, str] = field(default_factory=dict)
    exists: bool = True

    @property
    def full_pipes(self) -> list[PipeInfo]:
        return [p for p in self.pipes if p.full]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["full_pipes"] = [p.fd for p in self.full_pipes]
        return data


def _why(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied ({exc.strerror})"
    if exc.errno in (errno.ENOENT, errno.ESRCH):
        return "process exited"
    return exc.strerror or str(exc)


def _read(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def _status_fields(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key] = value.strip()
    return out


def _wchan(path: str) -> str | None:
    try:
        value = _read(path).strip()
    except OSError:
        return None
    # "0" means not sleeping, or the symbol is hidden (kptr_restrict); both say nothing.
    return value if value and value != "0" else None


def _parse_stat(text: str) -> tuple[str, str, int]:
    """Return (comm, state, ppid) from /proc/PID/stat; comm may hold spaces and parentheses."""
    lpar, rpar = text.index("("), text.rindex(")")
    rest = text[rpar + 2 :].split()
    return text[lpar + 1 : rpar], rest[0], int(rest[1])


def _threads(pid: int, info: ProcInfo) -> None:
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError as exc:
        info.unreadable["threads"] = _why(exc)
        return
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        try:
            fields = _status_fields(_read(f"{base}/status"))
        except OSError:
            continue  # the thread ended between listdir and open
        info.threads.append(
            ThreadInfo(
                tid=tid,
                name=fields.get("Name", ""),
                state=fields.get("State", "?")[:1],
                wchan=_wchan(f"{base}/wchan"),
                blocked=decode_sigmask(fields.get("SigBlk", "0")),
                pending=decode_sigmask(fields.get("SigPnd", "0")),
            )
        )
    info.thread_count = len(info.threads) or info.thread_count


# --- pipes ----------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _pidfd_getfd(pidfd: int, fd: int) -> int:
    """Duplicate *fd* of the process behind *pidfd* into ours (Linux 5.6+, ptrace rights)."""
    res = int(_libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return res


def _fionread(fd: int) -> int:
    buf = fcntl.ioctl(fd, termios.FIONREAD, struct.pack("i", 0))
    return int(struct.unpack("i", buf)[0])


def _writable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(ev & select.POLLOUT for _, ev in poller.poll(0))


def _fd_mode(pid: int, fd: int) -> str:
    try:
        fields = _status_fields(_read(f"/proc/{pid}/fdinfo/{fd}"))
        acc = int(fields.get("flags", "0"), 8) & os.O_ACCMODE
    except (OSError, ValueError):
        return "?"
    return {os.O_RDONLY: "r", os.O_WRONLY: "w"}.get(acc, "rw")


def _dup(pid: int, pidfd: int | None, fd: int, kind: str, note: list[str]) -> int:
    """A descriptor on the same pipe/socket as *fd* of *pid*, or -1."""
    if pidfd is not None:
        try:
            return _pidfd_getfd(pidfd, fd)
        except OSError as exc:
            note.append(f"pidfd_getfd: {_why(exc)}")
    if kind == "pipe":
        # Opening /proc/PID/fd/N opens the pipe inode itself, like a FIFO; non-blocking and
        # read-only so we neither wait for a writer nor become one.  Sockets cannot be opened so.
        try:
            return os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            note.append(f"open: {_why(exc)}")
    return -1


def _measure(dup: int, pipe: PipeInfo) -> bool:
    """Fill queued/capacity/writable; False for sockets that are not AF_UNIX (not ours)."""
    if pipe.kind == "pipe":
        pipe.queued = _fionread(dup)
        pipe.capacity = fcntl.fcntl(dup, F_GETPIPE_SZ)
    else:
        # fileno= adopts the descriptor; detach() hands it back so the caller closes it once.
        sock = socket.socket(fileno=dup)
        try:
            # Wakeup socketpairs (asyncio's self-pipe) are AF_UNIX; TCP peers are not ours.
            if sock.family != socket.AF_UNIX:
                return False
            pipe.capacity = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        finally:
            sock.detach()
        pipe.queued = _fionread(dup)
    if pipe.mode in ("w", "rw"):
        pipe.writable = _writable(dup)
    return True


def _pipes(pid: int, info: ProcInfo) -> None:
    try:
        fds = sorted(int(f) for f in os.listdir(f"/proc/{pid}/fd"))
    except OSError as exc:
        info.unreadable["pipes"] = _why(exc)
        return
    try:
        pidfd: int | None = os.pidfd_open(pid)
    except OSError:
        pidfd = None
    try:
        for fd in fds:
            pipe = _one_pipe(pid, pidfd, fd)
            if pipe is not None:
                info.pipes.append(pipe)
    finally:
        if pidfd is not None:
            os.close(pidfd)
    _judge_full(info.pipes)


def _one_pipe(pid: int, pidfd: int | None, fd: int) -> PipeInfo | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return None
    kind = target.partition(":")[0]
    if kind not in ("pipe", "socket") or not target.endswith("]"):
        return None
    pipe = PipeInfo(fd, kind, int(target[len(kind) + 2 : -1]), _fd_mode(pid, fd), None, None, False)
    notes: list[str] = []
    dup = _dup(pid, pidfd, fd, kind, notes)
    if dup < 0:
        if kind == "socket":
            return None  # cannot even tell whether it is a Unix socket
        pipe.note = "; ".join(notes)
        return pipe
    try:
        if not _measure(dup, pipe):
            return None
    except OSError as exc:
        notes.append(_why(exc))
    finally:
        os.close(dup)
    pipe.note = "; ".join(notes) or None
    return pipe


def _judge_full(pipes: list[PipeInfo]) -> None:
    """Flag full pipes and self-pipes.

    Heuristic for the signal wakeup fd (``signal.set_wakeup_fd`` is invisible from outside):
    a pipe whose read and write ends are both held by this same process is a self-pipe, the
    shape of every wakeup fd (CPython's, trio's, asyncio's); when such a pipe is full, the C
    signal handler's one-byte write fails with EAGAIN.  Socketpair ends have distinct inodes
    and cannot be paired from /proc, so sockets are never marked self_pipe.
    """
    ends: dict[int, list[PipeInfo]] = {}
    for pipe in pipes:
        if pipe.kind == "pipe":
            ends.setdefault(pipe.inode, []).append(pipe)
            by_bytes = pipe.queued is not None and pipe.capacity is not None
            pipe.full = (by_bytes and pipe.queued >= pipe.capacity) or pipe.writable is False  # type: ignore[operator]
        else:
            # poll() stops reporting POLLOUT on a Unix socket once a quarter of its send
            # buffer is unread by the peer; a non-blocking write fails soon after.
            pipe.full = pipe.writable is False
    for same in ends.values():
        modes = "".join(p.mode for p in same)
        self_pipe = "r" in modes and "w" in modes
        full = any(p.full for p in same)
        for pipe in same:
            pipe.self_pipe = self_pipe
            pipe.full = full


# --- entry point ----------------------------------------------------------------------------


def read_proc(pid: int) -> ProcInfo:
    """Read everything /proc tells about *pid*; never raises (an exited pid gives exists=False)."""
    info = ProcInfo(pid=pid)
    try:
        comm, state, ppid = _parse_stat(_read(f"/proc/{pid}/stat"))
        fields = _status_fields(_read(f"/proc/{pid}/status"))
    except (OSError, ValueError, IndexError) as exc:
        info.exists = False
        info.unreadable["stat"] = _why(exc) if isinstance(exc, OSError) else "unparsable"
        return info
    info.name, info.state, info.ppid = comm, state, ppid
    info.state_meaning = STATE_MEANINGS.get(state, "unknown")
    info.thread_count = int(fields.get("Threads", "0") or 0)
    info.signals = Signals(
        pending=decode_sigmask(fields.get("SigPnd", "0")),
        shared_pending=decode_sigmask(fields.get("ShdPnd", "0")),
        blocked=decode_sigmask(fields.get("SigBlk", "0")),
        ignored=decode_sigmask(fields.get("SigIgn", "0")),
        caught=decode_sigmask(fields.get("SigCgt", "0")),
    )
    try:
        raw = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115 - tiny file
        info.cmdline = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    except OSError as exc:
        info.unreadable["cmdline"] = _why(exc)
    info.wchan = _wchan(f"/proc/{pid}/wchan")
    try:
        info.kernel_stack = [ln for ln in _read(f"/proc/{pid}/stack").splitlines() if ln]
    except OSError as exc:
        info.unreadable["kernel_stack"] = _why(exc) + " (reading it needs CAP_SYS_ADMIN)"
    _threads(pid, info)
    # D-state anywhere in the process: one thread stuck in the kernel keeps the whole
    # process from dying, even of SIGKILL.
    info.d_state = state == "D" or any(t.state == "D" for t in info.threads)
    try:
        info.children = children_of(pid)
    except OSError as exc:
        info.unreadable["children"] = _why(exc)
    _pipes(pid, info)
    return info


# --- Ctrl-C facts ---------------------------------------------------------------------------


def sigint_facts(info: ProcInfo) -> dict[str, Any]:
    """What decides whether *info*'s process reacts to SIGINT, as facts (the analyzer words them:
    :mod:`forensics.analyze.sigint`)."""
    if not info.exists:
        return {"pid": info.pid, "exists": False}
    sig = info.signals
    live = [t for t in info.threads if t.state not in ("Z", "X")] or info.threads
    d_threads = [t for t in info.threads if t.state == "D"]
    return {
        "pid": info.pid,
        "exists": True,
        "state": info.state,
        "state_meaning": info.state_meaning,
        "d_state": info.d_state,
        "d_threads": [t.tid for t in d_threads],
        "wchan": info.wchan or next((t.wchan for t in d_threads if t.wchan), None),
        "ignored": "SIGINT" in sig.ignored,
        "caught": "SIGINT" in sig.caught,
        "live_threads": [t.tid for t in live],
        "blocked_threads": [t.tid for t in live if "SIGINT" in t.blocked],
        "pending_threads": [t.tid for t in live if "SIGINT" in t.pending],
        "shared_pending": "SIGINT" in sig.shared_pending,
        # A full signal wakeup channel: the C handler's write fails, the event loop never wakes.
        "full_wakeup": [
            {"fd": p.fd, "kind": p.kind, "queued": p.queued, "capacity": p.capacity}
            for p in info.full_pipes
            if p.mode in ("w", "rw") and (p.kind == "socket" or (p.kind == "pipe" and p.self_pipe))
        ],
    }
