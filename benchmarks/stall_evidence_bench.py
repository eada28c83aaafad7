"""Time from "stall detected" to complete evidence for 8 busy Python processes.

Two workloads: processes that spin (some with several spinning threads: the worst case, 16
threads competing for 2 cores with py-spy's unwinding) and processes whose threads are blocked
on locks (what a stalled test usually looks like).  One measurement is one
``collect_evidence`` call over all 8 pids, from the call to its return with every file
written; sequential (workers=1) and parallel side by side, median of 5 runs.  Target: <= 1 s.

    python benchmarks/stall_evidence_bench.py [--procs 8] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forensics.collect.stacks import collect_evidence

SPIN = """
import sys, threading
def spin():
    while True:
        pass
for _ in range(int(sys.argv[1]) - 1):
    threading.Thread(target=spin, daemon=True).start()
print("ready", flush=True)
spin()
"""


BLOCKED = """
import sys, threading
lock = threading.Lock()
lock.acquire()
def wait_for_lock():
    lock.acquire()
for _ in range(int(sys.argv[1]) - 1):
    threading.Thread(target=wait_for_lock, daemon=True).start()
print("ready", flush=True)
wait_for_lock()
"""


def start(n: int, code: str = SPIN) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(n):
        threads = 1 + i % 3  # 1, 2 or 3 busy threads
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(threads)],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
    for proc in procs:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return procs


def measure(
    pids: list[int], workers: int | None, runs: int, native: bool = True
) -> tuple[list[float], int]:
    times, frames = [], 0
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.monotonic()
            ev = collect_evidence(
                pids, Path(tmp), "bench", None, None, workers=workers, native=native
            )
            times.append(time.monotonic() - t0)
            bad = [p.pid for p in ev.processes if p.method != "py-spy"]
            if bad:
                raise SystemExit(f"no py-spy stacks for {bad}: {ev.processes[0].error}")
            frames = sum(len(s.frames) for p in ev.processes for s in p.stacks)
    return times, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    modes = (
        ("sequential", 1, True),
        ("parallel", None, True),
        ("par,no-nat", None, False),  # what native unwinding costs
    )
    for workload, code in (("spinning", SPIN), ("blocked", BLOCKED)):
        procs = start(args.procs, code)
        try:
            pids = [p.pid for p in procs]
            for label, workers, native in modes:
                times, frames = measure(pids, workers, args.runs, native)
                rows.append(
                    (workload, label, statistics.median(times), min(times), max(times), frames)
                )
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"{args.procs} processes, {os.cpu_count()} CPUs, median of {args.runs} runs")
    print(
        f"{'workload':<10}{'mode':<12}{'median s':>10}{'min s':>8}{'max s':>8}{'frames':>8}"
        "  target <= 1 s"
    )
    for workload, label, med, lo, hi, frames in rows:
        verdict = "ok" if med <= 1.0 else "OVER"
        print(f"{workload:<10}{label:<12}{med:>10.3f}{lo:>8.3f}{hi:>8.3f}{frames:>8}  {verdict}")


if __name__ == "__main__":
    main()
