"""How the HTML report scales: 12 workers x 20,000 tests (targets: <= 10 MB, <= 3 s to render).

    python benchmarks/html_bench.py [--workers 12] [--tests 20000] [--runs 3]

Prints the file size, the Python render time, and Chromium's time from navigation to the first
complete timeline drawing (read from the page), the median of ``--runs`` headless loads.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forensics.model import (
    Evidence,
    Frame,
    Incident,
    ProcessTimeline,
    Run,
    Source,
    Stack,
    TestCounts,
    TimelineTest,
    Triage,
)

T0 = 1_763_900_000.0


def synthetic_triage(workers: int = 12, tests_per_worker: int = 20_000, seed: int = 7) -> Triage:
    """A run shaped like a big real one: modules of tests, varied durations, a few deaths."""
    rng = random.Random(seed)
    timelines = []
    incidents: list[Incident] = []
    counts = TestCounts()
    for w in range(workers):
        worker = f"gw{w}"
        t = T0 + rng.random()
        tests = []
        for i in range(tests_per_worker):
            module = (
                f"tests/{'unit' if i % 3 else 'parity'}/test_module_{(w * 7 + i // 40) % 900}.py"
            )
            name = f"{module}::TestClass{i % 9}::test_case_{i}[param-{rng.randrange(50)}]"
            end = t + rng.expovariate(1 / 0.05)
            outcome = (
                "failed" if rng.random() < 0.01 else "skipped" if rng.random() < 0.03 else "passed"
            )
            setattr(counts, outcome, getattr(counts, outcome) + 1)
            tests.append(TimelineTest(name, t, end, outcome))
            t = end + 0.002
        died = w in (3, 8)
        if died:
            tests[-1].end = None
            tests[-1].outcome = None
            incidents.append(
                Incident(
                    id=f"I{len(incidents) + 1}",
                    cause="native-crash",
                    confidence="high",
                    summary=f"{worker} died of SIGSEGV in robin-sparkless 0.11.0",
                    worker=worker,
                    pid=5000 + w,
                    signal="SIGSEGV",
                    test=tests[-1].test,
                    phase="call",
                    prior_tests=[x.test for x in tests[-200:-1]],
                    native_library="_native.abi3.so (robin-sparkless 0.11.0)",
                    evidence=[Evidence("output.log:1", "line of output\n" * 5000)],
                    stacks=[
                        Stack(
                            5000 + w,
                            "main",
                            [Frame("collect", None, None, True, "_native.abi3.so")],
                        )
                    ],
                    repro=f"pytest {tests[-2].test} {tests[-1].test}",
                    time=t,
                )
            )
        memory = [
            (T0 + s, 300_000_000 + s * 50_000 + rng.randrange(10_000_000))
            for s in range(0, int(t - T0), 1)
        ]
        timelines.append(
            ProcessTimeline(
                5000 + w, worker, ["python"], T0, t, tests, memory, "SIGSEGV" if died else "exit 0"
            )
        )
    end = max(tl.end or T0 for tl in timelines)
    return Triage(
        source=Source("bundle", ["forensics-bench"]),
        run=Run(["pytest", "-n", str(workers)], 1, end - T0, counts, T0, end),
        incidents=incidents,
        timelines=timelines,
        environment={"redacted": True},
    )


def chromium_render_ms(page: Path) -> tuple[float, float]:
    """(ms from navigation to the first drawing, wall seconds of the whole headless load)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:
        started = time.perf_counter()
        out = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--window-size=1400,2000",
                "--dump-dom",
                page.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        ).stdout
        wall = time.perf_counter() - started
    m = re.search(r'data-render-ms="(\d+)"', out)
    if m is None:
        raise SystemExit("the page did not finish drawing (no data-render-ms)")
    return float(m.group(1)), wall


def main() -> int:
    from forensics.render.html import render_html

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--tests", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    triage = synthetic_triage(args.workers, args.tests)
    started = time.perf_counter()
    html = render_html(triage)
    render_s = time.perf_counter() - started
    size = len(html.encode())
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html)
        loads = [chromium_render_ms(page) for _ in range(args.runs)]
    draw_ms = statistics.median(ms for ms, _ in loads)
    wall_s = statistics.median(w for _, w in loads)
    size_ok = "ok" if size <= 10 * 1024 * 1024 else "OVER"
    draw_ok = "ok" if draw_ms <= 3000 else "OVER"
    print(f"{'workers x tests':<28}{args.workers} x {args.tests}")
    print(f"{'file size':<28}{size / 1e6:.2f} MB   (target <= 10 MB)  {size_ok}")
    print(f"{'python render_html':<28}{render_s:.2f} s")
    print(
        f"{'chromium to first drawing':<28}{draw_ms / 1000:.2f} s   "
        f"(target <= 3 s, median of {args.runs})  {draw_ok}"
    )
    print(f"{'chromium headless wall':<28}{wall_s:.2f} s   (incl. browser start)")
    return 0 if size <= 10 * 1024 * 1024 and draw_ms <= 3000 else 1


if __name__ == "__main__":
    sys.exit(main())
