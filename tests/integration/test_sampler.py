"""The memory sampler on a real process tree that grows and shrinks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from forensics.bundle import JsonlWriter, read_jsonl
from forensics.supervise.sampler import MemorySampler, Series

MIB = 1024 * 1024

# A parent that starts a grandchild; the grandchild grows to 120 MiB, frees 100 MiB, then waits.
TREE = (
    "import subprocess, sys, time\n"
    "code = ('import time\\n'"
    "        'a = bytearray(120 * 1024 * 1024)\\n'"
    "        'time.sleep(1.5)\\n'"
    "        'a = bytearray(20 * 1024 * 1024)\\n'"
    "        'time.sleep(30)\\n')\n"
    "p = subprocess.Popen([sys.executable, '-c', code])\n"
    "print(p.pid, flush=True)\n"
    "p.wait()\n"
)


def test_sampler_sees_growth_peak_and_tree(tmp_path: Path) -> None:
    writer = JsonlWriter(tmp_path / "events.jsonl")
    parent = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True)
    sampler = MemorySampler(parent.pid, interval=0.1, writer=writer)
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        sampler.start()
        time.sleep(3.5)
        sampler.stop()
    finally:
        try:
            os.kill(child_pid, 9)
        except (NameError, ProcessLookupError):
            pass
        parent.kill()
        parent.wait()
        writer.close()
    snap = sampler.snapshot()
    assert {parent.pid, child_pid} <= set(snap)
    child = snap[child_pid]
    assert child.peak_rss >= 120 * MIB
    assert child.last_rss < 60 * MIB  # it freed the big buffer
    assert child.peak_time is not None
    assert (child.peak_time, child.peak_rss) in child.timeline
    assert child.timeline[-1][1] == child.last_rss
    assert snap[parent.pid].peak_rss < 60 * MIB
    tree = sampler.total_timeline()
    assert max(v for _, v in tree) >= child.peak_rss
    assert sampler.errors == []
    assert 0 < sampler.cpu_seconds < 3.5
    records: list[dict[str, Any]] = list(read_jsonl(tmp_path / "events.jsonl"))
    mine = [r for r in records if r["pid"] == child_pid]
    assert all(r["kind"] == "memory" for r in records)
    # Written on change only: far fewer records than ticks, but the growth is there.
    assert len(mine) < sampler.ticks / 2
    assert any(r["rss"] >= 120 * MIB for r in mine)
    assert mine[-1]["rss"] < 60 * MIB


def test_exited_process_is_marked_gone() -> None:
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess,sys,time\n"
            "subprocess.run([sys.executable,'-c','import time; time.sleep(1)'])\n"
            "print('child done', flush=True)\n"
            "time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    sampler = MemorySampler(parent.pid, interval=0.05)
    try:
        sampler.start()
        assert parent.stdout is not None
        assert parent.stdout.readline() == "child done\n"
        time.sleep(0.3)
        sampler.stop()
    finally:
        parent.kill()
        parent.wait()
    snap = sampler.snapshot()
    gone = [p for p in snap.values() if p.gone]
    assert len(gone) == 1 and gone[0].pid != parent.pid
    assert not snap[parent.pid].gone


def test_bounded_points_after_many_ticks() -> None:
    sampler = MemorySampler(os.getpid(), interval=0.01, max_points_per_process=50)
    for _ in range(3000):
        sampler.sample()
    snap = sampler.snapshot()[os.getpid()]
    # 50 kept points plus at most the peak and the last one merged in.
    assert 20 <= len(snap.timeline) <= 52
    assert snap.timeline == sorted(snap.timeline)
    assert len(sampler.total_timeline()) <= 52
    assert sampler.ticks == 3000


def test_series_keeps_peak_and_last_through_decimation() -> None:
    s = Series(max_points=8)
    for i in range(1000):
        s.add(float(i), 1_000_000 if i == 333 else i)
    pts = s.points()
    assert len(pts) <= 10
    assert (333.0, 1_000_000) in pts
    assert pts[-1] == (999.0, 999)
    # The kept points still span the whole run, evenly.
    assert pts[0][0] == 0.0
