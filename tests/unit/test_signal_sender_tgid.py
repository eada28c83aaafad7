"""The sender of a traced signal is the process its thread belongs to, read from /proc while it
lives: the trace's own tgid column can be stale (the kernel fills it at context switches)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any, cast

from forensics.supervise.signalwatch import SignalWatch, read_tgid


def _line(tid: int, tgid: int) -> str:
    return (
        f"         python3-{tid}    ( {tgid}) [000] d..1.  5238.630347: signal_generate: "
        "sig=9 errno=0 code=0 comm=python3 pid=7085 grp=1 res=0"
    )


def test_a_thread_belongs_to_its_process() -> None:
    ready, done = threading.Event(), threading.Event()
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        ready.set()
        done.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        ready.wait(10)
        assert tids[0] != os.getpid()
        assert read_tgid(tids[0]) == os.getpid()
        assert read_tgid(threading.get_native_id()) == os.getpid()
    finally:
        done.set()
        thread.join()


def test_a_gone_thread_has_no_process() -> None:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    assert read_tgid(int(child.stdout)) is None


def test_a_stale_tgid_in_the_trace_is_replaced_by_the_live_one() -> None:
    watch = SignalWatch(cast(Any, None))
    stale = 999_999_999
    watch._take([_line(threading.get_native_id(), stale)], 0.0)
    [event] = list(watch._pending)
    assert event.sender_pid == os.getpid()
    assert event.sender_tid == threading.get_native_id()
