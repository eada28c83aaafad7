"""OOM end to end: `forensics wrap` inside a real 400 MB memory cgroup, the kernel's OOM killer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import (
    UNPRIVILEGED,
    chown_tree,
    clean_env,
    report_json,
    unprivileged_dir,
    unprivileged_python,
)

from forensics.collect.cgroups import current_cgroup

pytestmark = [pytest.mark.slow, pytest.mark.root]
LIMIT = 400 * 1024 * 1024


@pytest.fixture
def limited_cgroup() -> Iterator[Path]:
    """A memory cgroup with a 400 MB limit, like a CI runner's."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a memory cgroup")
    info = current_cgroup()
    if info is None:
        pytest.skip("no memory cgroup controller mounted")
    path = info.dir / f"forensics-test-{uuid.uuid4().hex[:8]}"
    try:
        path.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a memory cgroup here: {exc.strerror}")
    limit_file = "memory.limit_in_bytes" if info.version == 1 else "memory.max"
    (path / limit_file).write_text(str(LIMIT))
    if info.version == 1 and (path / "memory.memsw.limit_in_bytes").exists():
        # Without swap accounting the limit is on memory alone; there is no swap here anyway.
        pass
    try:
        yield path
    finally:
        for _ in range(100):
            procs = (path / "cgroup.procs").read_text().split()
            for pid in procs:
                try:
                    os.kill(int(pid), 9)
                except ProcessLookupError:
                    pass
            try:
                path.rmdir()
                break
            except OSError:
                import time

                time.sleep(0.05)


def _wrap_in(
    cgroup: Path, tmp: Path, *pytest_args: str, user: list[str] | None = None, python: str = ""
) -> tuple[int, dict[str, Any]]:
    bundle = tmp / "bundle"
    python = python or sys.executable
    inner = [
        python,
        "-m",
        "forensics",
        "wrap",
        "--bundle",
        str(bundle),
        "--",
        python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    script = f'echo $$ > {cgroup}/cgroup.procs && exec "$@"'
    proc = subprocess.run(
        ["sh", "-c", script, "sh", *(user or []), *inner],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(),
    )
    return proc.returncode, report_json(bundle)


# The test that hogs makes itself the OOM killer's first choice, whatever its size when the limit
# is hit (other processes' page cache and kernel memory count too): which process the kernel
# picks is its business; what happens after is ours. Raising one's own score needs no privilege.
VICTIM = "open('/proc/self/oom_score_adj', 'w').write('1000')"
HOG_SUITE = textwrap.dedent(
    f"""
    import time
    def test_small():
        data = bytearray(10 * 2**20)
    def test_other():
        time.sleep(0.2)
    def test_hog():
        {VICTIM}
        blobs = []
        while True:
            blobs.append(bytearray(16 * 2**20))
    def test_after():
        pass
    """
)


def test_xdist_worker_past_the_limit_is_an_oom_kill(limited_cgroup: Path, tmp_path: Path) -> None:
    (tmp_path / "test_alloc.py").write_text(HOG_SUITE)
    _check_hog_oom(*_wrap_in(limited_cgroup, tmp_path, "-n", "2", "test_alloc.py"))


def test_unprivileged_oom_kill_is_not_an_external_kill(limited_cgroup: Path) -> None:
    """As an ordinary user: no run cgroup, no kernel log (dmesg_restrict), no connector; the
    surrounding cgroup's oom_kill counter is the evidence."""
    python = unprivileged_python()
    tmp = unprivileged_dir("forensics-oom-")
    (tmp / "test_alloc.py").write_text(HOG_SUITE)
    chown_tree(tmp)
    status, triage = _wrap_in(
        limited_cgroup, tmp, "-n", "2", "test_alloc.py", user=UNPRIVILEGED, python=python
    )
    incident = _check_hog_oom(status, triage, confidence="medium")
    assert any("oom_kill counter" in e["excerpt"] for e in incident["evidence"]), incident
    notes = " ".join(triage["notes"])
    assert "surrounding cgroup" in notes, notes


def _check_hog_oom(status: int, triage: dict[str, Any], confidence: str = "high") -> dict[str, Any]:
    summaries = [i["summary"] for i in triage["incidents"]]
    hog = [i for i in triage["incidents"] if i["test"] == "test_alloc.py::test_hog"]
    others = [i for i in triage["incidents"] if i not in hog]
    if status == 137 and others and all(i["cause"] == "oom-kill" for i in others):
        # On a loaded machine the kernel sometimes kills a second process after the hog (the
        # pytest controller, while the hog's memory is still being reaped): the run then ends
        # with SIGKILL, and forensics must say so, an OOM kill as well, never anything else.
        assert len(hog) == 1, (summaries, _kernel_kills())
    else:
        assert status == 1, (summaries, _kernel_kills())
        assert not others, summaries
    [incident] = hog
    assert incident["cause"] == "oom-kill", incident["summary"]
    assert incident["signal"] == "SIGKILL"
    assert incident["test"] == "test_alloc.py::test_hog"
    assert incident["memory"]["limit_bytes"] == LIMIT
    assert incident["confidence"] == confidence
    result: dict[str, Any] = incident
    return result


def _kernel_kills() -> list[str]:
    """The kernel's own account of whom it killed, for a failure message."""
    try:
        lines = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in lines.splitlines() if "Killed process" in line][-4:]


def test_leak_across_tests_kills_pytest_itself(limited_cgroup: Path, tmp_path: Path) -> None:
    leaks = "\n".join(
        f"def test_leak_{i}():\n    LEAK.append(bytearray(50 * 2**20))\n" for i in range(4)
    )
    (tmp_path / "test_leak.py").write_text(
        "LEAK = []\n\ndef test_fine():\n    pass\n\n"
        + leaks
        + f"\ndef test_last_straw():\n    {VICTIM}\n"
        + "    while True:\n        LEAK.append(bytearray(8 * 2**20))\n"
    )
    status, triage = _wrap_in(limited_cgroup, tmp_path, "test_leak.py")
    assert status == 137
    [incident] = triage["incidents"]
    assert incident["cause"] == "oom-kill"
    assert incident["test"] == "test_leak.py::test_last_straw"
    growth = {g["test"]: g["rss_delta_bytes"] for g in incident["memory"]["top_growth"]}
    for i in range(4):
        assert growth[f"test_leak.py::test_leak_{i}"] >= 40 * 2**20
    assert "test_leak.py::test_fine" not in growth
    assert incident["memory"]["peak_rss_bytes"] > 300 * 2**20
    markdown = subprocess.run(
        [
            sys.executable,
            "-m",
            "forensics",
            "report",
            str(tmp_path / "bundle"),
            "--format",
            "markdown",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "peak RSS" in markdown and "test_leak_0" in markdown
