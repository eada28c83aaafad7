"""Memory sampler for the supervised process tree: RSS per process and for the whole tree.

Bounded however long the run: each series keeps at most ``max_points`` samples by decimation
(when full, every other point is dropped and the stride doubles), and always keeps its peak
and its last value, which are what an OOM diagnosis needs.  The events journal gets a record
only when a process's RSS moved noticeably, so a quiet 10-hour run writes little.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psutil

from forensics.collect.proctree import descendants

# A journal record when RSS moved by this much since the last one written for that process...
CHANGE_RATIO = 0.05
CHANGE_BYTES = 16 * 1024 * 1024
# ...and at least this often for a process that exists, so a reader sees it is still alive.
HEARTBEAT_S = 30.0


class RecordWriter(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...


class Series:
    """A (time, value) series of bounded length that always keeps its peak and last point."""

    def __init__(self, max_points: int) -> None:
        self.max_points = max(4, max_points)
        self._points: list[tuple[float, int]] = []
        self._stride = 1
        self._count = 0
        self.peak: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def add(self, t: float, value: int) -> None:
        point = (t, value)
        self.last = point
        if self.peak is None or value > self.peak[1]:
            self.peak = point
        if self._count % self._stride == 0:
            self._points.append(point)
            if len(self._points) >= self.max_points:
                # Halve, keeping even positions: the survivors stay evenly spaced in ticks.
                self._points = self._points[::2]
                self._stride *= 2
        self._count += 1

    def points(self) -> list[tuple[float, int]]:
        """The kept points with the peak and the last point merged in, in time order."""
        pts = list(self._points)
        for extra in (self.peak, self.last):
            if extra is not None and extra not in pts:
                pts.append(extra)
        pts.sort()
        return pts


@dataclass
class ProcessMemory:
    pid: int
    name: str | None = None
    first_seen: float = 0.0
    last_seen: float = 0.0
    gone: bool = False  # not seen at the last tick (exited, or left the tree)
    peak_rss: int = 0
    peak_time: float | None = None
    last_rss: int = 0
    timeline: list[tuple[float, int]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "gone": self.gone,
            "peak_rss": self.peak_rss,
            "peak_time": self.peak_time,
            "last_rss": self.last_rss,
            "timeline": [[t, v] for t, v in self.timeline],
        }


class _Tracked:
    __slots__ = (
        "create_time",
        "first_seen",
        "gone",
        "last_seen",
        "logged_rss",
        "logged_t",
        "name",
        "proc",
        "series",
    )

    def __init__(self, proc: psutil.Process, t: float, max_points: int) -> None:
        self.proc = proc
        self.series = Series(max_points)
        self.first_seen = t
        self.last_seen = t
        self.gone = False
        self.logged_rss = -1
        self.logged_t = 0.0
        try:
            self.create_time = proc.create_time()
            self.name: str | None = proc.name()
        except psutil.Error:
            self.create_time = 0.0
            self.name = None


class MemorySampler:
    """A daemon thread sampling the RSS of *root_pid* and all its descendants every *interval*.

    *pids* optionally replaces the psutil tree walk with another membership source, e.g.
    ``RunCgroup.pids``: a cgroup also holds descendants that double-forked out of the tree.
    """

    def __init__(
        self,
        root_pid: int,
        interval: float = 0.5,
        writer: RecordWriter | None = None,
        max_points_per_process: int = 2000,
        *,
        pids: Callable[[], Iterable[int]] | None = None,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self.root_pid = root_pid
        self.interval = interval
        self.writer = writer
        self.max_points = max_points_per_process
        self.heartbeat_s = heartbeat_s
        self._pids_source = pids
        self._tracked: dict[int, _Tracked] = {}
        self._total = Series(max_points_per_process)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0
        self.cpu_seconds = 0.0  # CPU time the sampling thread used: its own overhead
        self.errors: list[str] = []

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="forensics-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        start_cpu = time.thread_time()
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception as exc:  # never let the sampler die silently mid-run
                if len(self.errors) < 10:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            self.cpu_seconds = time.thread_time() - start_cpu
            # Fixed-rate schedule, skipping missed ticks rather than bursting after a stall.
            next_tick += self.interval
            now = time.monotonic()
            if next_tick < now:
                next_tick = now + self.interval
            self._stop.wait(next_tick - now)
        self.cpu_seconds = time.thread_time() - start_cpu

    # --- one tick ----------------------------------------------------------------------------

    def _members(self) -> list[int]:
        if self._pids_source is not None:
            return list(self._pids_source())
        return descendants([self.root_pid])

    def sample(self) -> None:
        """Take one sample of every process in the tree (the thread calls this every tick)."""
        t = time.time()
        seen: set[int] = set()
        total = 0
        records: list[dict[str, Any]] = []
        members = self._members()
        with self._lock:
            for pid in members:
                tracked = self._tracked.get(pid)
                if tracked is None or tracked.gone:
                    # New, or back after missing a tick: a reused pid is another process.
                    try:
                        proc = psutil.Process(pid)
                        if tracked is not None and proc.create_time() != tracked.create_time:
                            tracked = None
                    except psutil.Error:
                        continue
                    if tracked is None:
                        tracked = _Tracked(proc, t, self.max_points)
                        self._tracked[pid] = tracked
                try:
                    rss = int(tracked.proc.memory_info().rss)
                except psutil.Error:
                    continue
                seen.add(pid)
                total += rss
                tracked.series.add(t, rss)
                tracked.last_seen = t
                tracked.gone = False
                record = self._maybe_record(tracked, t, rss)
                if record is not None:
                    records.append(record)
            for pid, tracked in self._tracked.items():
                if pid not in seen:
                    tracked.gone = True
            self._total.add(t, total)
            self.ticks += 1
        if self.writer is not None:
            for record in records:
                self.writer.write(record)

    def _maybe_record(self, tracked: _Tracked, t: float, rss: int) -> dict[str, Any] | None:
        last = tracked.logged_rss
        moved = abs(rss - last)
        small = last >= 0 and moved < CHANGE_BYTES and moved < last * CHANGE_RATIO
        if small and t - tracked.logged_t < self.heartbeat_s:
            return None
        tracked.logged_rss, tracked.logged_t = rss, t
        peak = tracked.series.peak
        return {
            "t": t,
            "kind": "memory",
            "pid": tracked.proc.pid,
            "rss": rss,
            "peak_rss": peak[1] if peak else rss,
        }

    # --- results -----------------------------------------------------------------------------

    def snapshot(self) -> dict[int, ProcessMemory]:
        """Per process: peak, last and the bounded timeline (for system/memory.json)."""
        with self._lock:
            out = {}
            for pid, tr in self._tracked.items():
                peak, last = tr.series.peak, tr.series.last
                out[pid] = ProcessMemory(
                    pid=pid,
                    name=tr.name,
                    first_seen=tr.first_seen,
                    last_seen=tr.last_seen,
                    gone=tr.gone,
                    peak_rss=peak[1] if peak else 0,
                    peak_time=peak[0] if peak else None,
                    last_rss=last[1] if last else 0,
                    timeline=tr.series.points(),
                )
            return out

    def total_timeline(self) -> list[tuple[float, int]]:
        """The whole tree's RSS over time (bounded like a process's timeline)."""
        with self._lock:
            return self._total.points()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form for system/memory.json."""
        peak = self._total.peak
        return {
            "interval": self.interval,
            "ticks": self.ticks,
            "sampler_cpu_seconds": round(self.cpu_seconds, 4),
            "errors": list(self.errors),
            "tree_peak_rss": peak[1] if peak else None,
            "tree_peak_time": peak[0] if peak else None,
            "tree": [[t, v] for t, v in self.total_timeline()],
            "processes": [p.to_dict() for p in self.snapshot().values()],
        }
