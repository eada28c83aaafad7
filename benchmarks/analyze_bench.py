"""`forensics analyze` on a large CI log against `grep -cE` of the same trigger phrases.

    python benchmarks/analyze_bench.py [--size-mb 300] [--runs 3] [--log PATH]

Builds (once; reused while the fixtures and this generator are unchanged) a log of the real
excerpts in ``tests/fixtures/logs/*.log``, one after about every megabyte of pytest progress
lines in the styles real runs print: ``-v`` (``tests/x.py::test_y PASSED   [ 3%]``), dots
(``tests/x.py ....s...x.  [ 12%]``) and pytest-xdist (``[gw3] [ 12%] PASSED tests/...``), some
behind GitHub Actions timestamps and colours.  Then times, median of --runs, interleaved:

- ``grep -cE '<patterns.GREP_PATTERN>' LOG`` (stdout to a pipe: GNU grep stops at the first
  match when its stdout is /dev/null);
- ``forensics analyze LOG --format json``, with numpy importable;
- the same with numpy made unimportable (``sys.modules["numpy"] = None`` before the CLI runs),
  the path a user without the ``fast`` extra takes.

Peak RSS is each child's own, from wait4().  Targets: analyze within 3x grep, RSS <= 150 MB.
The two analyze outputs must be byte-identical; the benchmark fails when they are not.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

from forensics.analyze.logs.patterns import GREP_PATTERN

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "logs"
GENERATOR = "2"  # bump when the generated text changes, so a cached log is rebuilt
EXCERPT_EVERY = 1 << 20  # bytes of progress lines between two real excerpts

# The analyzer as a user without numpy runs it: the import fails as if it were not installed.
WITHOUT_NUMPY = (
    "import runpy, sys; sys.modules['numpy'] = None; sys.argv[0] = 'forensics'; "
    "runpy.run_module('forensics', run_name='__main__', alter_sys=True)"
)

_DIRS = ("tests", "tests/unit", "tests/integration", "src/pkg/tests", "tests/io")
_VOCABULARY = (
    "parse config reader writer cache session client server request response schema model "
    "field index query plan table column join merge split encode decode stream buffer "
    "token lexer render template plugin hook fixture marker option path file dir archive "
    "zip tar json yaml csv date time zone locale unicode bytes int float decimal array "
    "frame series group sort filter map reduce retry backoff pool queue worker thread lock "
    "event signal handler context manager registry loader resolver version compat legacy"
)
_WORDS = _VOCABULARY.split()
_OUTCOMES = ("PASSED",) * 40 + ("SKIPPED", "XFAIL")
_DOT_OUTCOMES = "." * 60 + "sx"


def _node(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(_WORDS, 3)
    path = f"{rng.choice(_DIRS)}/test_{words[0]}_{words[1]}.py"
    name = f"test_{words[2]}_{rng.choice(_WORDS)}"
    if rng.random() < 0.3:
        name = f"Test{words[1].title()}::{name}"
    if rng.random() < 0.3:
        name += f"[{rng.choice(_WORDS)}-{rng.randrange(64)}]"
    return path, name


def _progress_segment(rng: random.Random, budget: int) -> list[str]:
    """About ``budget`` bytes of one run's progress lines, in one style (as one job prints)."""
    style = rng.choice(("verbose", "dots", "xdist", "xdist-dots"))
    colour = rng.random() < 0.5
    green, reset = ("\x1b[32m", "\x1b[0m") if colour else ("", "")
    lines: list[str] = []
    size = 0
    total = budget // 70
    n = 0
    while size < budget:
        pct = min(100, n * 100 // max(total, 1))
        if style == "verbose":
            path, name = _node(rng)
            head = f"{path}::{name} {green}{rng.choice(_OUTCOMES)}{reset}"
            line = f"{head:<72} [{pct:3d}%]"
        elif style == "dots":
            path, _ = _node(rng)
            dots = "".join(rng.choice(_DOT_OUTCOMES) for _ in range(rng.randrange(5, 60)))
            line = f"{path} {green}{dots}{reset}"
            line = f"{line:<80} [{pct:3d}%]"
        elif style == "xdist":
            path, name = _node(rng)
            outcome = rng.choice(_OUTCOMES)
            line = f"[gw{rng.randrange(8)}] [{pct:3d}%] {green}{outcome}{reset} {path}::{name} "
        else:
            dots = "".join(rng.choice(_DOT_OUTCOMES) for _ in range(72))
            line = f"{green}{dots}{reset} [{pct:3d}%]"
        lines.append(line)
        size += len(line) + 1
        n += 1
    return lines


def _stamped(lines: list[str], t: float) -> tuple[list[str], float]:
    out = []
    for line in lines:
        t += 0.0137
        whole = int(t)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        out.append(f"{stamp}.{int((t - whole) * 1e7):07d}Z {line}")
    return out, t


def write_log(path: Path, size_mb: int, seed: int = 14) -> None:
    rng = random.Random(seed)
    excerpts = [p.read_bytes() for p in sorted(FIXTURES.glob("*.log"))]
    target = size_mb << 20
    t = 1_772_470_000.0
    written = 0
    k = 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        while written < target:
            lines = _progress_segment(rng, EXCERPT_EVERY)
            if rng.random() < 0.5:
                lines, t = _stamped(lines, t)
            block = ("\n".join(lines) + "\n").encode() + excerpts[k % len(excerpts)]
            if not block.endswith(b"\n"):
                block += b"\n"
            k += 1
            out.write(block)
            written += len(block)
    tmp.replace(path)


def cached_log(directory: Path, size_mb: int) -> Path:
    digest = hashlib.sha256(GENERATOR.encode())
    for fixture in sorted(FIXTURES.glob("*.log")):
        digest.update(fixture.name.encode() + b"\0" + fixture.read_bytes())
    path = directory / f"forensics-analyze-bench-{size_mb}mb-{digest.hexdigest()[:12]}.log"
    if not path.exists():
        print(f"writing {path} ({size_mb} MB)...", file=sys.stderr)
        write_log(path, size_mb)
    return path


def _timed(argv: list[str]) -> tuple[float, int, int, bytes]:
    """Wall seconds, peak RSS in bytes (this child only, from wait4), exit status, stdout."""
    start = time.perf_counter()
    # A pipe, not /dev/null: GNU grep notices /dev/null and stops at the first match.
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = []
    while block := proc.stdout.read(1 << 16):
        out.append(block)
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.stdout.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    return elapsed, usage.ru_maxrss * 1024, proc.returncode, b"".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--log", type=Path, help="an existing log instead of the generated one")
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()
    log = args.log or cached_log(args.cache_dir, args.size_mb)
    size = log.stat().st_size
    analyze = ["forensics", "analyze", str(log), "--format", "json"]
    commands = {
        "grep -cE": ["grep", "-cE", GREP_PATTERN, str(log)],
        "analyze (numpy)": [sys.executable, "-m", *analyze],
        "analyze (no numpy)": [sys.executable, "-c", WITHOUT_NUMPY, *analyze[1:]],
    }
    if importlib.util.find_spec("numpy") is None:
        print("numpy is not installed (pip install '.[fast]'): no numpy row", file=sys.stderr)
        del commands["analyze (numpy)"]
    results: dict[str, list[tuple[float, int, int, bytes]]] = {name: [] for name in commands}
    for _ in range(args.runs):
        for name, argv in commands.items():  # interleaved, so load on the machine hits all
            results[name].append(_timed(argv))
    grep_s = statistics.median(r[0] for r in results["grep -cE"])
    print(f"log: {log}  {size / 2**20:.0f} MB  runs: {args.runs} (median)")
    print(f"grep -cE matching lines: {results['grep -cE'][0][3].decode().strip()}")
    print(f"{'command':<20}{'median s':>10}{'MB/s':>9}{'peak RSS MB':>13}{'x grep':>8}{'exit':>6}")
    for name, rows in results.items():
        secs = statistics.median(r[0] for r in rows)
        rss = max(r[1] for r in rows) / 2**20
        codes = ",".join(sorted({str(r[2]) for r in rows}))
        speed = size / 2**20 / secs
        print(f"{name:<20}{secs:>10.2f}{speed:>9.0f}{rss:>13.0f}{secs / grep_s:>8.2f}{codes:>6}")
    outputs = {r[3] for name, rows in results.items() if name != "grep -cE" for r in rows}
    if len(outputs) != 1:
        sys.exit("analyze printed different reports with and without numpy, or across runs")
    print("analyze output identical with and without numpy")


if __name__ == "__main__":
    main()
