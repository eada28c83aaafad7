"""Time from "stall detected" to complete evidence for 8 busy Python processes.

Each process spins (some with several spinning threads).  One measurement is one
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


def start(n: int) -> list[subprocess.Popen[str]]:
    procs = []
    for i in range(n):
        threads = 1 + i % 3  # 1, 2 or 3 spinning threads
        proc = subprocess.Popen(
            [sys.executable, "-c", SPIN, str(threads)],
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
    procs = start(args.procs)
    try:
        pids = [p.pid for p in procs]
        rows = []
        modes = (
            ("sequential", 1, True),
            ("parallel", None, True),
            ("par,no-nat", None, False),  # what native unwinding costs
        )
        for label, workers, native in modes:
            times, frames = measure(pids, workers, args.runs, native)
            rows.append((label, statistics.median(times), min(times), max(times), frames))
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    print(f"{args.procs} busy processes, {os.cpu_count()} CPUs, median of {args.runs} runs")
    print(f"{'mode':<12}{'median s':>10}{'min s':>8}{'max s':>8}{'frames':>8}  target <= 1 s")
    for label, med, lo, hi, frames in rows:
        verdict = "ok" if med <= 1.0 else "OVER"
        print(f"{label:<12}{med:>10.3f}{lo:>8.3f}{hi:>8.3f}{frames:>8}  {verdict}")


if __name__ == "__main__":
    main()
