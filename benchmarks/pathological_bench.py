"""`forensics analyze` on a log where an xdist worker dies every third test, against a log of
the same size and style where none dies.

    python benchmarks/pathological_bench.py [--size-mb 5] [--runs 3] [--every 3] [--keep DIR]
        [--baseline DIR]

Both logs are pytest-xdist runs (``[gw3] [ 12%] PASSED tests/x.py::test_y``) behind GitHub
Actions timestamps, 8 workers.  In the pathological one every ``--every``-th test takes its
worker down the way xdist reports it::

    [gw2] node down: Not properly terminated
    [gw2] [ 12%] FAILED tests/x.py::test_y
    replacing crashed worker gw2

and the run ends with xdist's FAILURES section (``worker 'gw2' crashed while running ...``)
and short summary for each of them.  Each log is analyzed --runs times, interleaved, and the
medians print side by side: the analyzer's time should grow with the log's size, not with
how many of its lines are deaths.  ``--baseline DIR`` (a checkout of another version, e.g.
``git archive <commit> forensics | tar -x -C DIR``) times that version on the same logs in the
same interleaved runs (its ``forensics`` first on PYTHONPATH) and checks that both versions
print the same report.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = 8
_VOCABULARY = (
    "parse config reader writer cache session client server request response schema model "
    "field index query plan table column join merge split encode decode stream buffer token"
)
_WORDS = _VOCABULARY.split()


def _test(rng: random.Random, n: int) -> str:
    a, b, c = rng.sample(_WORDS, 3)
    return f"tests/test_{a}_{b}.py::test_{c}_{n}"


def write_log(path: Path, size: int, every: int | None, seed: int = 19) -> int:
    """About ``size`` bytes of an xdist run; with ``every``, each every-th test kills its
    worker.  Returns how many workers died."""
    rng = random.Random(seed)
    t = 1_772_470_000.0
    total = size // 90  # about how many progress lines fit
    crashed: list[tuple[str, str]] = []
    out: list[str] = []
    written = 0

    def emit(text: str) -> None:
        nonlocal t, written
        t += 0.0137
        whole = int(t)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        line = f"{stamp}.{int((t - whole) * 1e7):07d}Z {text}\n"
        out.append(line)
        written += len(line)

    for text in (
        "============================= test session starts ==============================",
        "platform linux -- Python 3.11.7, pytest-8.3.4, pluggy-1.5.0",
        "rootdir: /home/runner/work/proj/proj",
        "plugins: xdist-3.6.1, timeout-2.3.1",
        f"created: {WORKERS}/{WORKERS} workers",
        f"{WORKERS} workers [{total} items]",
        "",
    ):
        emit(text)
    # Room for the FAILURES section and summary the crashes add at the end.
    tail_share = 0.0 if every is None else 250 / (90 * every + 250)
    n = 0
    next_worker = WORKERS
    alive = [f"gw{i}" for i in range(WORKERS)]
    while written < size * (1 - tail_share):
        n += 1
        pct = min(100, n * 100 // max(total, 1))
        slot = rng.randrange(WORKERS)
        worker, test = alive[slot], _test(rng, n)
        if every is not None and n % every == 0:
            emit(f"[{worker}] node down: Not properly terminated")
            emit(f"[{worker}] [{pct:3d}%] FAILED {test} ")
            emit("")
            emit(f"replacing crashed worker {worker}")
            crashed.append((worker, test))
            alive[slot] = f"gw{next_worker}"
            next_worker += 1
        else:
            emit(f"[{worker}] [{pct:3d}%] PASSED {test} ")
    if crashed:
        emit("=================================== FAILURES ===================================")
        for worker, test in crashed:
            emit(f"{'_' * 20} {test.split('::')[1]} {'_' * 20}")
            emit(f"[{worker}] linux -- Python 3.11.7 /opt/hostedtoolcache/Python/3.11.7/bin/python")
            emit(f"worker '{worker}' crashed while running '{test}'")
        emit("=========================== short test summary info ============================")
        for _worker, test in crashed:
            emit(f"FAILED {test}")
    emit(f"============ {len(crashed)} failed, {n - len(crashed)} passed in 812.31s ============")
    path.write_text("".join(out))
    return len(crashed)


def _analyze(log: Path, baseline: Path | None = None) -> tuple[float, bytes]:
    env = dict(os.environ)
    if baseline is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(baseline), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "forensics", "analyze", str(log), "--format", "json"],
        capture_output=True,
        check=False,
        env=env,
        # Not the caller's directory: "-m" puts it first on sys.path, where a checkout's
        # forensics would shadow the baseline's.
        cwd=log.parent,
    )
    took = time.perf_counter() - start
    if not done.stdout.lstrip().startswith(b"{"):
        sys.exit(f"forensics analyze {log} failed:\n{done.stderr.decode(errors='replace')}")
    return took, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=int, default=3, help="a worker dies every N-th test")
    parser.add_argument("--keep", type=Path, help="write the two logs here and keep them")
    parser.add_argument("--baseline", type=Path, help="a checkout of the version to compare")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        where = args.keep or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        size = int(args.size_mb * (1 << 20))
        normal, crafted = where / "normal.log", where / "pathological.log"
        write_log(normal, size, None)
        deaths = write_log(crafted, size, args.every)
        versions: list[Path | None] = [None] if args.baseline is None else [args.baseline, None]
        times: dict[tuple[Path | None, Path], list[float]] = {
            (v, log): [] for v in versions for log in (normal, crafted)
        }
        outputs: dict[Path, set[bytes]] = {normal: set(), crafted: set()}
        for _ in range(args.runs):
            for version, log in times:  # interleaved, so load on the machine hits all
                secs, out = _analyze(log, version)
                times[version, log].append(secs)
                outputs[log].add(out)
        print(f"runs: {args.runs} (median)  worker deaths in the pathological log: {deaths}")
        print(f"{'version':<12}{'log':<14}{'MB':>7}{'median s':>10}{'MB/s':>8}   all runs")
        for (version, log), took in times.items():
            mb = log.stat().st_size / 2**20
            med = statistics.median(took)
            runs = " ".join(f"{s:.2f}" for s in took)
            label = "baseline" if version is not None else "this tree"
            print(f"{label:<12}{log.stem:<14}{mb:>7.1f}{med:>10.2f}{mb / med:>8.1f}   {runs}")
        for version in versions:
            ratio = statistics.median(times[version, crafted]) / statistics.median(
                times[version, normal]
            )
            label = "baseline" if version is not None else "this tree"
            print(f"{label}: pathological / normal {ratio:.2f}x")
        if any(len(out) != 1 for out in outputs.values()):
            sys.exit("the versions (or the runs) printed different reports for the same log")
        print("reports identical across versions and runs")


if __name__ == "__main__":
    main()
