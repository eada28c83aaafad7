"""A real kernel OOM kill inside a memory cgroup, seen through the kernel log and the counters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from forensics.collect.cgroups import RunCgroup, current_cgroup, read_memory_from_dir
from forensics.collect.kernlog import KernelLog
from forensics.kernel_lines import parse_oom

pytestmark = pytest.mark.root

MIB = 1024 * 1024
LIMIT = 150 * MIB
# Touch every page so RSS really grows; stop at 4x the limit in case the limit did not apply.
ALLOCATE = (
    "import sys\n"
    "a = []\n"
    "for _ in range(60):\n"
    "    a.append(bytearray(10 * 1024 * 1024))\n"
    "sys.exit(3)\n"
)


def _need_root_cgroup() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create memory cgroups and read /dev/kmsg")
    if current_cgroup() is None:
        pytest.skip("no memory cgroup controller mounted (v1 or v2)")


def _kernel_log() -> KernelLog:
    log = KernelLog.open_or_reason()
    if isinstance(log, str):
        pytest.skip(log)
    return log


def test_oom_kill_in_run_cgroup_is_seen() -> None:
    _need_root_cgroup()
    made = RunCgroup.create_or_reason(f"t{uuid.uuid4().hex[:8]}", memory_limit=LIMIT)
    if isinstance(made, str):
        pytest.skip(made)
    cg = made
    log = _kernel_log()
    try:
        assert cg.read().limit_bytes == LIMIT
        assert cg.read().oom_kill == 0
        proc = subprocess.Popen(
            [
                "sh",
                "-c",
                f'echo $$ > "{cg.procs_path}" && exec "{sys.executable}" -c "$0"',
                ALLOCATE,
            ]
        )
        rc = proc.wait(timeout=60)
        assert rc == -signal.SIGKILL
        lines = log.read_new()
        kills = [k for k in parse_oom(lines) if k.pid == proc.pid]
        assert len(kills) == 1, [ln.text for ln in lines if "oom" in ln.text.lower()]
        kill = kills[0]
        assert kill.constraint == "memcg"
        assert kill.memcg == cg.info.path
        assert kill.memcg_limit_bytes == LIMIT
        assert kill.anon_rss_bytes is not None and kill.anon_rss_bytes > LIMIT // 2
        assert kill.time is not None
        mem = cg.read()
        assert mem.oom_kill == 1
        assert mem.limit_bytes == LIMIT
        assert mem.peak_bytes is not None and mem.peak_bytes >= LIMIT * 0.9
        assert cg.pids() == []
    finally:
        log.close()
        cg.kill_all()
        assert cg.remove() is None
    assert not cg.dir.exists()


HELPER = textwrap.dedent(
    """
    import json, subprocess, sys, time
    from forensics.collect.cgroups import RunCgroup, cgroup_chain
    cg = RunCgroup.create(sys.argv[1])
    into = lambda: cg.add_pid(0)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               preexec_fn=into)
    hog = subprocess.Popen([sys.executable, "-c", sys.argv[2]], preexec_fn=into)
    rc = hog.wait(60)
    chain = [m.to_dict() for m in cgroup_chain(sleeper.pid)]
    pids_before = cg.pids()
    killed = cg.kill_all()
    out = {"rc": rc, "hog": hog.pid, "sleeper": sleeper.pid, "path": cg.info.path,
           "chain": chain, "pids_before": pids_before, "killed": killed,
           "pids_after": cg.pids(), "removed": cg.remove()}
    sleeper.wait(10)
    print(json.dumps(out))
    """
)


def test_run_cgroup_under_limited_parent() -> None:
    """As in CI: the whole supervisor runs inside a limited cgroup; the run cgroup is a child."""
    _need_root_cgroup()
    here = current_cgroup()
    assert here is not None
    outer = here.dir / f"forensics-outer-{uuid.uuid4().hex[:8]}"
    try:
        outer.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup under {here.dir}: {exc.strerror}")
    log = _kernel_log()
    try:
        limit_file = "memory.limit_in_bytes" if here.version == 1 else "memory.max"
        if here.version == 2:
            pytest.skip("the nested test needs subtree_control delegation; v1 here")
        (outer / limit_file).write_text(str(LIMIT))
        proc = subprocess.run(
            [
                "sh",
                "-c",
                f'echo $$ > "{outer}/cgroup.procs" && exec "$@"',
                "sh",
                sys.executable,
                "-c",
                HELPER,
                "nested",
                ALLOCATE,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert out["rc"] == -signal.SIGKILL
        outer_path = here.path.rstrip("/") + "/" + outer.name
        assert out["path"] == outer_path + "/forensics-nested"
        # The chain: the run cgroup itself (inherited limit), then the parent that sets it.
        chain = out["chain"]
        assert [m["path"] for m in chain[:2]] == [out["path"], outer_path]
        assert chain[0]["limit_bytes"] == LIMIT and chain[1]["limit_bytes"] == LIMIT
        # cgroup v1 counts a kill in the victim's own cgroup: the run cgroup.
        assert chain[0]["oom_kill"] == 1
        assert out["pids_before"] == [out["sleeper"]]
        assert out["killed"] == [out["sleeper"]]
        assert out["pids_after"] == [] and out["removed"] is None
        kills = [k for k in parse_oom(log.read_new()) if k.pid == out["hog"]]
        assert len(kills) == 1
        assert kills[0].memcg == outer_path  # the limit that was hit
        assert kills[0].task_memcg == out["path"]
        assert kills[0].memcg_limit_bytes == LIMIT
        assert read_memory_from_dir(outer, 1).limit_hits
    finally:
        log.close()
        for d in sorted(outer.glob("*/"), reverse=True):
            if d.is_dir() and (d / "cgroup.procs").exists():
                d.rmdir()
        outer.rmdir()
