"""A bundle's output.log goes through the raw-log scanner: what a dying process printed only on
the console becomes evidence on the wrap incident of that death, never an incident of its own.

Real runs: an xdist worker whose test writes a Rust panic message through libc and aborts (as
a PyO3 extension built with panic=abort does), and a `python -S` child, which loads no agent
and has no fault file, segfaulting with faulthandler on: its dump exists only on the console.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import PYTEST, clean_env, report_json, run

pytestmark = pytest.mark.slow

SUITE = """
import ctypes
import subprocess
import sys

LIBC = ctypes.CDLL(None)
PANIC = (
    b"thread '<unnamed>' panicked at src/lib.rs:42:9:\\n"
    b"index out of bounds: the len is 3 but the index is 7\\n"
    b"note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\\n"
)


def test_ok():
    pass


def test_panics_in_native_code():
    LIBC.write(2, PANIC, len(PANIC))
    LIBC.abort()


def test_child_without_agent_segfaults():
    code = "import ctypes; ctypes.string_at(0)"
    child = subprocess.run([sys.executable, "-S", "-X", "faulthandler", "-c", code])
    assert child.returncode == 0
"""


@pytest.fixture(scope="module")
def console_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    cwd = tmp_path_factory.mktemp("console")
    (cwd / "test_console.py").write_text(SUITE)
    bundle = cwd / "bundle"
    # -s: the tests' stderr is the console's, as in a CI job that runs pytest -s.
    argv = ["wrap", "--bundle", str(bundle), "--", *PYTEST, "-s", "-n", "2", "test_console.py"]
    proc = run([PYTEST[0], "-m", "forensics", *argv], cwd, env=clean_env())
    assert proc.returncode == 1, proc.stderr[-3000:]
    return bundle, report_json(bundle, cwd)


def _for(triage: dict[str, Any], test: str) -> list[dict[str, Any]]:
    return [i for i in triage["incidents"] if i["test"] == f"test_console.py::{test}"]


def _console_lines(bundle: Path, incident: dict[str, Any]) -> list[str]:
    output = (bundle / "output.log").read_text().splitlines()
    return [output[c["line"] - 1] for c in incident["extra"].get("console", [])]


def test_a_panic_printed_on_the_console_enriches_the_worker_death(console_run: Any) -> None:
    bundle, triage = console_run
    [incident] = _for(triage, "test_panics_in_native_code")
    assert (incident["cause"], incident["signal"]) == ("native-crash", "SIGABRT")
    whats = [c["what"] for c in incident["extra"]["console"]]
    assert whats == ["Rust panic: index out of bounds: the len is 3 but the index is 7"], whats
    [line] = _console_lines(bundle, incident)
    assert "panicked at src/lib.rs:42:9" in line
    assert incident["summary"].endswith(
        "after Rust panic: index out of bounds: the len is 3 but the index is 7"
    ), incident["summary"]


def test_a_dump_only_the_console_holds_enriches_the_child_death(console_run: Any) -> None:
    _, triage = console_run
    children = _for(triage, "test_child_without_agent_segfaults")
    # One incident for the child's death: the console's dump is not a second one, and the
    # worker's panic (printed at the same time, on the same console) is not the child's.
    assert len(children) == 1, [i["summary"] for i in triage["incidents"]]
    [incident] = children
    assert (incident["cause"], incident["signal"]) == ("native-crash", "SIGSEGV")
    assert [c["what"] for c in incident["extra"]["console"]] == [
        "Fatal Python error: Segmentation fault"
    ]
    assert "Rust panic" not in incident["summary"]
    sources = [e["source"] for e in incident["evidence"]]
    assert len(sources) == len(set(sources)), sources
    assert any(f["name"] == "string_at" for s in incident["stacks"] for f in s["frames"])


def test_nothing_the_console_shows_is_left_unmatched_or_doubled(console_run: Any) -> None:
    bundle, triage = console_run
    assert len(triage["incidents"]) == 2, [i["summary"] for i in triage["incidents"]]
    assert not any("match no process death" in n for n in triage["notes"]), triage["notes"]
    # Library owners were resolved while wrap ran, for the analyzer to read.
    owners = json.loads((bundle / "system" / "owners.json").read_text())
    assert isinstance(owners["objects"], dict)
