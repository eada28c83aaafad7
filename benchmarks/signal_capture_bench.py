"""Wall-time overhead of signal capture on a suite that sends 10,000 signals.

Usage (root, for the tracepoints): python benchmarks/signal_capture_bench.py [--runs 5]
    [--signals 10000] [--workers 2]

The suite has 100 tests; each sends SIGUSR1 to its own process N/100 times (a Python handler
counts them, as a suite using signals for timers or wake-ups does): N generate and N deliver
tracepoint hits.  The same `forensics wrap -- pytest` command runs with capture on and with
FORENSICS_SIGNALS=0, alternately, in one invocation; the figure is the median wall time of
each and the median's difference.  The captured bundle is checked to hold every signal
(identical signals read together are one record with a `count`).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """
import os, signal, subprocess, sys

N = {per_test}
received = []
signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))


def _send():
    for _ in range(N):
        os.kill(os.getpid(), signal.SIGUSR1)


{tests}
"""

TEST = """
def test_signals_{i}():
    before = len(received)
    _send()
    assert len(received) - before == N
"""


def write_suite(where: Path, signals: int) -> None:
    per_test = signals // 100
    tests = "".join(TEST.format(i=i) for i in range(100))
    (where / "test_signals.py").write_text(SUITE.format(per_test=per_test, tests=tests))
    (where / "pytest.ini").write_text("[pytest]\n")


def run_once(
    where: Path, capture: bool, workers: int, index: int
) -> tuple[float, int, float, float]:
    bundle = where / f"bundle-{'on' if capture else 'off'}-{index}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORENSICS_")}
    if not capture:
        env["FORENSICS_SIGNALS"] = "0"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--"]
    argv += [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    if workers:
        argv += ["-n", str(workers)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=where, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU of wrap, pytest and its workers: steadier than wall time on a shared machine.
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    if done.returncode != 0:
        raise SystemExit(
            f"run failed ({done.returncode}):\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    captured = 0
    signals = bundle / "signals.jsonl"
    if signals.is_file():
        with open(signals) as fh:
            captured = sum(
                rec.get("count", 1)
                for line in fh
                if (rec := json.loads(line))["event"] == "generate" and rec["signal"] == "SIGUSR1"
            )
    reader_cpu = 0.0
    for line in (bundle / "events.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "collector" and rec.get("name") == "signals" and "cpu_s" in rec:
            reader_cpu = float(rec["cpu_s"])
    return wall, captured, reader_cpu, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--signals", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: none)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("signal capture needs root: run this benchmark as root", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="forensics-sigbench-") as tmp:
        where = Path(tmp)
        write_suite(where, args.signals)
        run_once(where, True, args.workers, -1)  # warm the page cache and pyc files
        on: list[float] = []
        off: list[float] = []
        counts: list[int] = []
        cpu: list[float] = []
        run_cpu: dict[bool, list[float]] = {True: [], False: []}
        for i in range(args.runs):
            # Alternate, so load from other jobs on the machine hits both alike.
            for capture in (i % 2 == 0, i % 2 != 0):
                wall, captured, reader_cpu, total = run_once(where, capture, args.workers, i)
                (on if capture else off).append(wall)
                run_cpu[capture].append(total)
                if capture:
                    counts.append(captured)
                    cpu.append(reader_cpu)
        m_on, m_off = statistics.median(on), statistics.median(off)
        print(f"suite: 100 tests, {args.signals} SIGUSR1 to a Python handler, -n {args.workers}")
        print(f"runs: {args.runs} each, alternating; median wall time")
        print(f"  without capture: {m_off:.3f} s   (runs: {', '.join(f'{w:.2f}' for w in off)})")
        print(f"  with capture:    {m_on:.3f} s   (runs: {', '.join(f'{w:.2f}' for w in on)})")
        print(f"  overhead:        {100 * (m_on - m_off) / m_off:+.2f} %")
        print(f"  SIGUSR1 generate records captured per run: {counts}")
        c_on, c_off = statistics.median(run_cpu[True]), statistics.median(run_cpu[False])
        print(f"  run CPU (all processes): without {c_off:.2f} s, with {c_on:.2f} s")
        print(f"  capture thread CPU per run (median): {statistics.median(cpu):.3f} s")
        print(f"  capture thread CPU / run CPU: {100 * statistics.median(cpu) / c_off:.2f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
