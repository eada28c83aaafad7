"""`forensics analyze` on a large CI log against `grep -cE` of the same trigger phrases.

    python benchmarks/analyze_bench.py [--size-mb 320] [--runs 3] [--log PATH]

Writes (once; reused while its size matches) a synthetic GitHub Actions log of a 12-worker
pytest-xdist run: timestamped, coloured PASSED lines, captured logging, a few failure sections,
faulthandler dumps, node-down lines and an INTERNALERROR block.  Then times, median of --runs:
`grep -cE '<patterns.GREP_PATTERN>' LOG` and `forensics analyze LOG --format json`, each alone,
and reads each child's peak RSS from wait4().  Targets: analyze within 3x grep, RSS <= 150 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from forensics.analyze.logs.patterns import GREP_PATTERN

WORKERS = 12
SP = "/opt/hostedtoolcache/Python/3.12.8/x64/lib/python3.12/site-packages"


def _crash_block(rng: random.Random, worker: int, test: str) -> list[str]:
    func = test.rsplit("::", 1)[1].split("[", 1)[0]
    path = test.split("::", 1)[0]
    return [
        "Fatal Python error: Segmentation fault",
        "",
        f"Current thread 0x00007f{rng.randrange(16**10):010x} (most recent call first):",
        f'  File "{SP}/fastlib/core.py", line 77 in compute',
        f'  File "/home/runner/work/app/app/{path}", line 20 in {func}',
        f'  File "{SP}/_pytest/python.py", line 159 in pytest_pyfunc_call',
        f'  File "{SP}/xdist/remote.py", line 195 in run_one_test',
        "",
        f"[gw{worker}] node down: Not properly terminated",
        f"[gw{worker}] [ 50%] FAILED {test} ",
        "",
        f"replacing crashed worker gw{worker}",
    ]


def write_log(path: Path, size_mb: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    target = size_mb << 20
    t0 = 1_767_225_600.0
    written = 0
    n = 0
    with path.open("w", encoding="utf-8") as out:
        while written < target:
            lines: list[str] = []
            for _ in range(2000):
                n += 1
                worker = n % WORKERS
                test = (
                    f"tests/unit/test_module_{n % 400}.py::TestThing::test_case_{n}[param-{n % 7}]"
                )
                lines.append(
                    f"[gw{worker}] [{(n // 1000) % 100:3d}%] \x1b[32mPASSED\x1b[0m {test} "
                )
                if n % 5 == 0:
                    lines.append(
                        f"DEBUG    urllib3.connectionpool:connectionpool.py:546 "
                        f'https://api.internal:443 "GET /v1/items/{n} HTTP/1.1" 200 {n % 9000}'
                    )
                if n % 11 == 0:
                    lines.append(
                        f"INFO     app.worker:worker.py:88 processed batch {n} in {n % 97} ms"
                    )
                if n % 250_000 == 0:
                    lines.extend(_crash_block(rng, worker, test))
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + n * 0.003))
            chunk = "".join(
                f"{stamp}.{i % 10_000_000:07d}Z {line}\n" for i, line in enumerate(lines, n)
            )
            out.write(chunk)
            written += len(chunk)
        out.write(
            "INTERNALERROR> Traceback (most recent call last):\n"
            f'INTERNALERROR>   File "{SP}/xdist/scheduler/loadscope.py", line 275,'
            " in _assign_work_unit\n"
            "INTERNALERROR>     worker_collection = self.registered_collections[node]\n"
            "INTERNALERROR> KeyError: <WorkerController gw13>\n"
            f"============ 4 failed, {n} passed in 5123.00s (1:25:23) ============\n"
        )


def _timed(argv: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS in bytes (this child only, from wait4), exit status."""
    start = time.perf_counter()
    # A pipe, not /dev/null: GNU grep notices /dev/null and stops at the first match.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    while proc.stdout.read(1 << 16):
        pass
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss * 1024, proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=320)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", type=Path, default=Path("/tmp/forensics-analyze-bench.log"))
    args = parser.parse_args()
    if not args.log.exists() or args.log.stat().st_size < args.size_mb << 20:
        print(f"writing {args.log} ({args.size_mb} MB)...", file=sys.stderr)
        write_log(args.log, args.size_mb)
    size = args.log.stat().st_size
    commands = {
        "grep -cE": ["grep", "-cE", GREP_PATTERN, str(args.log)],
        "forensics analyze": [
            sys.executable,
            "-m",
            "forensics",
            "analyze",
            str(args.log),
            "--format",
            "json",
        ],
    }
    results: dict[str, list[tuple[float, int, int]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():  # interleaved, so load on the machine hits both
            results[name].append(_timed(argv))
    grep_s = statistics.median(r[0] for r in results["grep -cE"])
    print(f"log: {args.log}  {size / 2**20:.0f} MB  runs: {args.runs} (median)")
    print(f"{'command':<20}{'median s':>10}{'MB/s':>9}{'peak RSS MB':>13}{'x grep':>8}{'exit':>6}")
    for name, rows in results.items():
        secs = statistics.median(r[0] for r in rows)
        rss = max(r[1] for r in rows) / 2**20
        codes = ",".join(sorted({str(r[2]) for r in rows}))
        speed = size / 2**20 / secs
        print(f"{name:<20}{secs:>10.2f}{speed:>9.0f}{rss:>13.0f}{secs / grep_s:>8.2f}{codes:>6}")


if __name__ == "__main__":
    main()
