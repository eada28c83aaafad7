"""What the agent costs inside the user's processes, side by side in one run.

1. Interpreter start-up: ``python -c pass`` as ``forensics wrap`` starts it (the agent's
   ``sitecustomize`` first on PYTHONPATH, FORENSICS_BUNDLE set) against a plain one; runs
   interleaved, medians compared.  Target: at most 5 ms more.
2. Per test: one pytest process (no xdist) on N trivial tests with the plugin active
   (``--forensics-bundle``) against the same run with the plugin inert.  Target: at most 50 us.

    python benchmarks/agent_cost.py [--starts 40] [--tests 5000] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from forensics.agents.bootstrap import SITE_DIR


def _time(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({done.returncode}): {done.stderr[-500:]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--tests", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FORENSICS_", "PYTEST_"))}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundle = root / "bundle"
        for sub in ("workers", "faults"):
            (bundle / sub).mkdir(parents=True)
        agent_env = {
            **base,
            "FORENSICS_BUNDLE": str(bundle),
            "PYTHONPATH": os.pathsep.join(p for p in (str(SITE_DIR), base.get("PYTHONPATH")) if p),
        }
        starts: dict[str, list[float]] = {"plain": [], "agent": []}
        for _ in range(args.starts):
            starts["plain"].append(_time([sys.executable, "-c", "pass"], base, root))
            starts["agent"].append(_time([sys.executable, "-c", "pass"], agent_env, root))
        (root / "test_many.py").write_text(
            "import pytest\n\n"
            f"@pytest.mark.parametrize('i', range({args.tests}))\n"
            "def test_n(i):\n    assert i >= 0\n"
        )
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist"]
        runs: dict[str, list[float]] = {"inert": [], "active": []}
        for run in range(args.runs):
            runs["inert"].append(_time([*pytest, "test_many.py"], base, root))
            active = [*pytest, f"--forensics-bundle={root / f'b{run}'}", "test_many.py"]
            runs["active"].append(_time(active, base, root))
    plain, agent = statistics.median(starts["plain"]), statistics.median(starts["agent"])
    print(f"interpreter start-up, median of {args.starts} interleaved runs")
    print(f"  plain {plain * 1000:7.1f} ms   with the agent {agent * 1000:7.1f} ms")
    print(f"  cost  {(agent - plain) * 1000:+7.1f} ms per process  (target <= 5 ms)")
    inert, active = statistics.median(runs["inert"]), statistics.median(runs["active"])
    print(f"pytest, {args.tests} trivial tests in one process, median of {args.runs} runs")
    print(f"  plugin inert {inert:6.2f} s   active {active:6.2f} s")
    per_test = (active - inert) / args.tests * 1e6
    print(f"  cost  {per_test:+7.1f} us per test  (target <= 50 us)")


if __name__ == "__main__":
    main()
