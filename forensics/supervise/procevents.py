"""Exit statuses of every process in the run, from the kernel's process-events connector.

A process's exit status goes only to its parent.  An xdist worker's parent is the pytest
controller, a pool worker's parent is the pool; neither is us.  The netlink proc connector
(``CONFIG_PROC_EVENTS``, needs CAP_NET_ADMIN) tells us every fork, exec and exit on the host,
with the raw wait status, so the supervisor learns that gw3 died of SIGSEGV even though pytest
reaped it.  Where the connector is not available the supervisor falls back to what the agents
and xdist report, and records why in the bundle.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
PROC_EVENT_FORK = 0x00000001
PROC_EVENT_EXEC = 0x00000002
PROC_EVENT_EXIT = 0x80000000

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_CNMSG = struct.Struct("=IIIIHH")  # idx, val, seq, ack, len, flags
_EVENT = struct.Struct("=IIQ")  # what, cpu, timestamp_ns
_NLMSG_DONE = 3


@dataclass(frozen=True)
class ProcEvent:
    kind: str  # "fork" | "exec" | "exit"
    pid: int
    ppid: int | None = None
    # For exits: the raw wait status, decoded.
    exit_code: int | None = None
    signal: int | None = None
    core_dumped: bool = False
    # When the kernel saw it (CLOCK_MONOTONIC, ns): the listener reads it later, and a child
    # that died as its test ended must not be dated into the next test.
    timestamp_ns: int | None = None


def decode_wait_status(status: int) -> tuple[int | None, int | None, bool]:
    """(exit code, terminating signal, core dumped) from a raw wait status."""
    if os.WIFSIGNALED(status):
        return None, os.WTERMSIG(status), bool(os.WCOREDUMP(status))
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status), None, False
    return None, None, False


def parse_message(data: bytes) -> list[ProcEvent]:
    """Decode the process events in one netlink datagram; unknown events are skipped."""
    events: list[ProcEvent] = []
    offset = 0
    while offset + _NLMSG.size <= len(data):
        length = _NLMSG.unpack_from(data, offset)[0]
        if length < _NLMSG.size:
            break
        body = offset + _NLMSG.size + _CNMSG.size
        if body + _EVENT.size <= len(data):
            what, _cpu, stamp = _EVENT.unpack_from(data, body)
            payload = body + _EVENT.size
            if what == PROC_EVENT_FORK and payload + 16 <= len(data):
                _ppid, ptgid, cpid, ctgid = struct.unpack_from("=IIII", data, payload)
                if cpid == ctgid:  # a new process, not a new thread
                    events.append(ProcEvent("fork", ctgid, ppid=ptgid, timestamp_ns=stamp))
            elif what == PROC_EVENT_EXEC and payload + 8 <= len(data):
                pid, tgid = struct.unpack_from("=II", data, payload)
                if pid == tgid:
                    events.append(ProcEvent("exec", tgid))
            elif what == PROC_EVENT_EXIT and payload + 16 <= len(data):
                pid, tgid, status, _sig = struct.unpack_from("=IIII", data, payload)
                if pid == tgid:  # the process itself, not one of its threads
                    code, sig, core = decode_wait_status(status)
                    events.append(
                        ProcEvent(
                            "exit",
                            tgid,
                            exit_code=code,
                            signal=sig,
                            core_dumped=core,
                            timestamp_ns=stamp,
                        )
                    )
        offset += (length + 3) & ~3
    return events


class ProcEventListener:
    """Follows the process tree rooted at the pids given to :meth:`track`.

    Forks of tracked processes are tracked too, so the whole run is followed even when
    processes are re-parented or live shorter than any polling interval.
    """

    def __init__(self, on_event: Callable[[ProcEvent], None]) -> None:
        self._on_event = on_event
        self._sock: socket.socket | None = None
        self._tracked: set[int] = set()
        self._lock = threading.Lock()
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Subscribe to process events; raises OSError when the kernel or our rights refuse."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        try:
            sock.bind((os.getpid(), CN_IDX_PROC))
            op = struct.pack("=I", PROC_CN_MCAST_LISTEN)
            cn = _CNMSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(op), 0) + op
            sock.send(_NLMSG.pack(_NLMSG.size + len(cn), _NLMSG_DONE, 0, 0, os.getpid()) + cn)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        except OSError:
            sock.close()
            raise
        self._sock = sock

    def track(self, pid: int) -> None:
        with self._lock:
            self._tracked.add(pid)

    def tracked(self, pid: int) -> bool:
        with self._lock:
            return pid in self._tracked

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forensics-procevents", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            ready, _, _ = select.select([sock.fileno(), self._stop_r], [], [])
            if self._stop_r in ready:
                return
            try:
                data = sock.recv(65536)
            except OSError:
                # ENOBUFS: the kernel dropped events under load; keep listening.
                continue
            for event in parse_message(data):
                self._dispatch(event)

    def _dispatch(self, event: ProcEvent) -> None:
        with self._lock:
            if event.kind == "fork":
                if event.ppid not in self._tracked:
                    return
                self._tracked.add(event.pid)
            elif event.pid not in self._tracked:
                return
        self._on_event(event)

    def stop(self) -> None:
        os.write(self._stop_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()
        os.close(self._stop_r)
        os.close(self._stop_w)
