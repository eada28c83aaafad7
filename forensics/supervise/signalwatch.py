"""Signal capture for a supervised run: every signal sent to or by the run's processes.

As root, the kernel's signal tracepoints in a tracefs instance of the run's own, read by a
thread while the run goes, written to ``signals.jsonl``.  The kernel filters out the noise
(SIGCHLD, SIGWINCH, SIGURG); this side keeps the signals whose receiver or sender is a process
of the run.  Without root the collector records why it could not run and what would grant it.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
from collections import deque
from typing import TYPE_CHECKING

from forensics.bundle import open_append
from forensics.collect.nativelib import resolve_address
from forensics.collect.sigtrace import (
    SignalEvent,
    TraceInstance,
    line_time,
    merge_key,
    parse_line,
)

if TYPE_CHECKING:
    from forensics.supervise.supervisor import Supervisor

SIGNALS = "signals.jsonl"
# FORENSICS_SIGNALS=0 turns the capture off (the benchmark compares with and without).
ENV_OFF = "FORENSICS_SIGNALS"
# The connector may name a new process a moment after it already got a signal.
MATCH_WINDOW_S = 5.0
_READ_WAIT_S = 0.2

WITHOUT_ROOT = (
    "signal capture needs root: the kernel's signal tracepoints (tracefs) are root-only. "
    "Without root, under Yama ptrace_scope=1 an ancestor may ptrace its descendants and would "
    "see signals delivered to them (not who sent them), at a cost on every signal of the run; "
    "forensics does not do that. Run `forensics wrap` as root (e.g. in the CI container), or "
    "give it CAP_SYS_ADMIN and a tracefs mount it can write, to name the sender of every kill"
)


class SignalWatch:
    def __init__(self, supervisor: Supervisor) -> None:
        self.sup = supervisor
        self.trace: TraceInstance | None = None
        self.writer: int | None = None  # signals.jsonl, written a tick's batch at a time
        self._pending: deque[SignalEvent] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tgids: dict[int, int] = {}
        self._handlers: dict[tuple[int, int], str | None] = {}
        self._argv: dict[int, list[str]] = {}
        self.written = 0
        self.seen = 0
        self.cpu_s = 0.0  # CPU time of the reading thread

    # Before the command starts: its first signal must not be missed.
    def prepare(self) -> None:
        if os.environ.get(ENV_OFF) == "0":
            reason = f"turned off ({ENV_OFF}=0)"
            self.sup.event("collector", name="signals", ok=False, reason=reason)
            return
        if os.geteuid() != 0:
            self.sup.event("collector", name="signals", ok=False, reason=WITHOUT_ROOT)
            return
        made = TraceInstance.open_or_reason(f"forensics-{self.sup.run_id}")
        if isinstance(made, str):
            self.sup.event(
                "collector",
                name="signals",
                ok=False,
                reason=f"{made}; signal senders are not known for this run",
            )
            return
        self.trace = made
        # Whatever ends the supervisor (an internal error too), the instance and mount go.
        atexit.register(self.abandon)
        self.writer = open_append(self.sup.bundle / SIGNALS)
        self.sup.event(
            "collector",
            name="signals",
            ok=True,
            source=f"tracefs {made.dir}",
            mounted=made.mounted_here,
        )
        self._thread = threading.Thread(target=self._read, daemon=True, name="forensics-signals")
        self._thread.start()

    def _read(self) -> None:
        assert self.trace is not None
        offset = self.trace.clock_offset
        while not self._stop.is_set():
            lines = self.trace.read(_READ_WAIT_S)
            self._take(lines, offset)
        # What the buffer still holds after the events were stopped.
        self._take(self.trace.read(0.0), offset)
        self.cpu_s = time.thread_time()

    def _take(self, lines: list[str], offset: float) -> None:
        parsed: list[SignalEvent] = []
        # A flood of one signal (a timer, a wake-up loop) is parsed once per read and counted:
        # parsing every line would cost the run a few percent of a core.
        same: dict[tuple[str, str], SignalEvent] = {}
        for line in lines:
            key = merge_key(line)
            if key is None:
                continue
            known = same.get(key)
            if known is not None:
                known.count += 1
                known.t_last = line_time(line, offset)
                continue
            event = parse_line(line, offset)
            if event is None:
                continue
            same[key] = event
            if event.event == "deliver" and event.handler is not None:
                # Where the handler lives, read while the receiver is alive.
                event_key = (event.pid, event.handler)
                if event_key not in self._handlers:
                    self._handlers[event_key] = resolve_address(event.pid, event.handler, "")
            elif event.sender_tid is not None:
                # The trace's tgid of a task comes from a map the kernel fills at context
                # switches: a sender not yet switched out shows the tgid an earlier task with
                # its pid had. Its own /proc entry, read now while it is alive, is the truth.
                tgid = read_tgid(event.sender_tid)
                if tgid is not None:
                    event.sender_pid = tgid
                if event.sender_pid is not None and event.sender_pid not in self._argv:
                    # The sender may be gone by the time the run ends (a `kill` command).
                    self._argv[event.sender_pid] = _cmdline(event.sender_pid)
            parsed.append(event)
        if parsed:
            with self._lock:
                self._pending.extend(parsed)
                self.seen += len(lines)

    def _tgid(self, pid: int) -> int:
        """The process a thread id belongs to (the tracepoint names tasks, i.e. threads)."""
        known = self._tgids.get(pid)
        if known is not None:
            return known
        tgid = read_tgid(pid) or pid
        self._tgids[pid] = tgid
        return tgid

    def tick(self, sup: Supervisor, *, final: bool = False) -> None:
        if self.writer is None:
            return
        now = time.time()
        run = set(sup.procs)
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        keep: list[SignalEvent] = []
        lines: list[str] = []
        for event in batch:
            receiver = self._tgid(event.pid)
            ours = receiver in run or (event.sender_pid is not None and event.sender_pid in run)
            if ours:
                record = event.to_dict()
                record["pid"] = receiver
                if receiver != event.pid:
                    record["tid"] = event.pid
                if event.sender_pid is not None:
                    record["sender_argv"] = sup.redactor.argv(self._argv.get(event.sender_pid, []))
                if event.handler is not None:
                    record["handler_object"] = self._handlers.get((event.pid, event.handler))
                lines.append(json.dumps(record, separators=(",", ":")))
                self.written += 1
            elif not final and now - event.t < MATCH_WINDOW_S:
                keep.append(event)
        if lines:
            try:
                os.write(self.writer, ("\n".join(lines) + "\n").encode("utf-8", "replace"))
            except OSError:
                pass
        if keep:
            with self._lock:
                self._pending.extendleft(reversed(keep))

    def finish(self, sup: Supervisor) -> None:
        if self.trace is None:
            return
        self.trace.stop_events()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self.tick(sup, final=True)
        dropped = self.trace.dropped()
        problem = self.trace.close()
        if self.writer is not None:
            os.close(self.writer)
            self.writer = None
        sup.event(
            "collector",
            name="signals",
            ok=problem is None,
            seen=self.seen,
            written=self.written,
            dropped=dropped,
            cpu_s=round(self.cpu_s, 3),
            **({"reason": problem} if problem else {}),
        )

    def abandon(self) -> None:
        """The command never started, or the supervisor is going: remove the instance."""
        self._stop.set()
        if self.trace is not None and not self.trace.closed:
            if self._thread is not None:
                self._thread.join(timeout=2.0)
            self.trace.close()


def read_tgid(tid: int) -> int | None:
    """The process a live thread id belongs to, from its /proc status (None once it is gone)."""
    try:
        with open(f"/proc/{tid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read(4096)
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
