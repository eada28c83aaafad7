"""Time from a native crash to its native stacks, and the core sizes handled.

Usage: python benchmarks/native_death_bench.py [--runs 3] [--sizes 0,200,1000]

A C library built here (gcc) segfaults inside a pytest test after the test has touched SIZE MiB
of memory (so the core grows with it).  Each run is `forensics wrap -- pytest`; the figures come
from the bundle's stacks/<pid>.native.json: `stack_s` (the exit seen by the supervisor -> every
thread's frames read from the core), `read_s` (pystack alone) and the core's size.  Cores above
the cap (2 GiB) are cut by the kernel, and a cut core has lost its stacks (written last).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

LIB = "int widget_read(int *p) { return *p + 1; }\n"
TEST = """
import ctypes, os
LIB = ctypes.CDLL(os.path.join(os.path.dirname(__file__), "libwidget.so"))
BALLAST = bytearray({size} * 1024 * 1024)
for i in range(0, len(BALLAST), 4096):
    BALLAST[i] = 1

def test_crash():
    LIB.widget_read(None)
"""


def run_once(where: Path, size: int, index: int) -> dict[str, float]:
    (where / "test_crash.py").write_text(TEST.format(size=size))
    bundle = where / f"bundle-{size}-{index}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FORENSICS_")}
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--"]
    argv += [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
    subprocess.run(argv, cwd=where, env=env, capture_output=True, check=False)
    [native] = list((bundle / "stacks").glob("*.native.json"))
    record = json.loads(native.read_text())
    if "stack_s" not in record:
        raise SystemExit(f"no stacks read ({size} MiB): {record.get('problems')}")
    shutil.rmtree(bundle)
    return {
        "stack_s": record["stack_s"],
        "read_s": record["read_s"],
        "core_mb": record["core"]["bytes"] / 2**20,
        "cut": float(record["core"]["cut"]),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sizes", default="0,200,1000", help="MiB each test touches before crashing")
    args = ap.parse_args()
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        print("needs a C compiler (gcc)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="forensics-nativebench-") as tmp:
        where = Path(tmp)
        (where / "widget.c").write_text(LIB)
        subprocess.run([cc, "-g", "-shared", "-fPIC", "-o", "libwidget.so", "widget.c"], cwd=where)
        (where / "pytest.ini").write_text("[pytest]\n")
        print(
            f"{'ballast':>8} {'core MiB':>9} {'cut':>4} {'death->stacks s':>16} {'pystack s':>10}"
        )
        for size in (int(s) for s in args.sizes.split(",")):
            rows = [run_once(where, size, i) for i in range(args.runs)]
            print(
                f"{size:>6}MB {statistics.median(r['core_mb'] for r in rows):>9.0f} "
                f"{'yes' if rows[0]['cut'] else 'no':>4} "
                f"{statistics.median(r['stack_s'] for r in rows):>16.2f} "
                f"{statistics.median(r['read_s'] for r in rows):>10.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
