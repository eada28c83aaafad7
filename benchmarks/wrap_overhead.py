"""What `forensics wrap` costs a healthy run: the same suite wrapped and unwrapped, side by side.

The suite is N trivial tests (the worst case for per-test breadcrumbs: nothing else to do), run
with `-n 2`.  Wall time of each form, median of R runs, interleaved so machine noise hits both.

    python benchmarks/wrap_overhead.py [--tests 2000] [--runs 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "test_many.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('i', range({args.tests}))\n"
            "def test_n(i):\n    assert i >= 0\n"
        )
        pytest_cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            str(args.workers),
            "test_many.py",
        ]
        forms = {
            "unwrapped": pytest_cmd,
            "wrapped": [
                sys.executable,
                "-m",
                "forensics",
                "wrap",
                "--bundle",
                "BUNDLE",
                "--force",
                "--",
                *pytest_cmd,
            ],
        }
        times: dict[str, list[float]] = {name: [] for name in forms}
        phases: dict[str, list[float]] = {"start": [], "command": [], "wind-down": [], "report": []}
        for run in range(args.runs):
            for name, cmd in forms.items():
                cmd = [str(root / f"b{run}") if c == "BUNDLE" else c for c in cmd]
                start_wall, start = time.time(), time.monotonic()
                done = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
                times[name].append(time.monotonic() - start)
                if done.returncode != 0:
                    raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-500:]}")
                if name == "wrapped":
                    marks = _marks(root / f"b{run}" / "events.jsonl")
                    end_wall = start_wall + times[name][-1]
                    phases["start"].append(marks["run-start"] - start_wall)
                    phases["command"].append(marks["command-exit"] - marks["run-start"])
                    phases["wind-down"].append(marks["run-end"] - marks["command-exit"])
                    phases["report"].append(end_wall - marks["run-end"])
        bundle_kb = sum(f.stat().st_size for f in (root / "b0").rglob("*") if f.is_file()) / 1024
    base = statistics.median(times["unwrapped"])
    print(f"{args.tests} trivial tests, -n {args.workers}, median of {args.runs} runs")
    print(f"{'form':<11}{'median s':>10}{'min s':>8}{'max s':>8}{'ratio':>7}")
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<11}{median:>10.2f}{min(values):>8.2f}{max(values):>8.2f}{median / base:>7.2f}"
        )
    print(f"bundle size: {bundle_kb:.0f} KiB")
    print(
        "wrapped, where the time goes (median s): "
        + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in phases.items())
    )
    print("  start: until the supervisor's first record; command: run-start to the command's")
    print("  exit; wind-down: last evidence and statuses; report: triage, HTML and summary")


def _marks(events: Path) -> dict[str, float]:
    """The times of the supervisor's run-start, command-exit and run-end records."""
    marks: dict[str, float] = {}
    for line in events.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") in ("run-start", "command-exit", "run-end"):
            marks.setdefault(record["kind"], float(record["t"]))
    return marks


if __name__ == "__main__":
    main()
