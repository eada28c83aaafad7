"""The cgroup readers against recorded control files, and detection against recorded /proc texts."""

from __future__ import annotations

import shutil
from pathlib import Path

from forensics.collect.cgroups import (
    detect_cgroup,
    parse_mountinfo,
    parse_proc_cgroup,
    read_memory_from_dir,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
V2 = FIXTURES / "cgroup_v2"


def test_v2_recorded_after_oom_kill() -> None:
    mem = read_memory_from_dir(V2, 2, "/actions_job/forensics-run")
    assert mem.version == 2
    assert mem.path == "/actions_job/forensics-run"
    assert mem.limit_bytes == 400 * 1024 * 1024
    assert mem.usage_bytes == 418922496
    assert mem.peak_bytes == 419430400
    assert mem.oom_kill == 1
    assert mem.oom_events == 2
    assert mem.limit_hits == 2113
    assert mem.high_events == 0
    assert mem.swap_limit_bytes == 0
    assert mem.swap_usage_bytes == 0
    assert mem.under_oom is None and mem.memsw_limit_bytes is None  # v1-only facts
    assert mem.events["oom_group_kill"] == 0
    assert mem.stat == {"anon": 411791360, "file": 4284416, "shmem": 0}


def test_v2_unlimited_and_missing_files(tmp_path: Path) -> None:
    # "max" is no limit; an older kernel has no memory.peak or swap files.
    (tmp_path / "memory.max").write_text("max\n")
    (tmp_path / "memory.current").write_text("8192\n")
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n")
    mem = read_memory_from_dir(tmp_path, 2)
    assert mem.limit_bytes is None
    assert mem.usage_bytes == 8192
    assert mem.peak_bytes is None
    assert mem.swap_limit_bytes is None
    assert mem.oom_kill == 0
    assert mem.stat == {}


def test_v1_files(tmp_path: Path) -> None:
    # As this VM's kernel (6.18, v1 memory hierarchy) writes them after one kill.
    (tmp_path / "memory.limit_in_bytes").write_text("157286400\n")
    (tmp_path / "memory.usage_in_bytes").write_text("1232896\n")
    (tmp_path / "memory.max_usage_in_bytes").write_text("157286400\n")
    (tmp_path / "memory.failcnt").write_text("65\n")
    (tmp_path / "memory.memsw.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    (tmp_path / "memory.stat").write_text(
        "cache 0\nrss 1003520\nshmem 0\nhierarchical_memory_limit 157286400\n"
    )
    mem = read_memory_from_dir(tmp_path, 1)
    assert mem.limit_bytes == 157286400
    assert mem.peak_bytes == 157286400
    assert mem.oom_kill == 1
    assert mem.under_oom is False
    assert mem.limit_hits == 65
    assert mem.memsw_limit_bytes is None  # the "unlimited" sentinel
    assert mem.oom_events is None


def test_v1_child_reports_inherited_limit(tmp_path: Path) -> None:
    (tmp_path / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (tmp_path / "memory.stat").write_text("hierarchical_memory_limit 419430400\n")
    assert read_memory_from_dir(tmp_path, 1).limit_bytes == 419430400


def test_parse_proc_cgroup_hybrid() -> None:
    # This VM: v1 controllers plus an empty v2 line.
    text = "9:name=systemd:/\n4:memory:/process_api/3a06\n2:cpu,cpuacct:/ci\n0::/\n"
    v1, v2 = parse_proc_cgroup(text)
    assert v1["memory"] == "/process_api/3a06"
    assert v1["cpu"] == v1["cpuacct"] == "/ci"
    assert v2 == "/"


def test_detect_v1_memory_wins_in_hybrid(tmp_path: Path) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    mountinfo = (
        f"35 31 0:32 / {tmp_path}/memory rw,relatime - cgroup cgroup rw,memory\n"
        f"41 31 0:38 / {tmp_path}/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    info = detect_cgroup("4:memory:/process_api/x\n0::/\n", mountinfo)
    assert info is not None
    assert info.version == 1
    assert info.dir == tmp_path / "memory" / "process_api" / "x"


def test_detect_v2_github_runner_layout(tmp_path: Path) -> None:
    # ubuntu-22.04 runners: pure cgroup2 at /sys/fs/cgroup with nsdelegate.
    root = tmp_path / "sys fs cgroup"  # a space, escaped as \040 in mountinfo
    root.mkdir()
    shutil.copy(V2 / "cgroup.controllers", root / "cgroup.controllers")
    escaped = str(root).replace(" ", "\\040")
    mountinfo = (
        "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
        f"35 24 0:30 / {escaped} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
        "rw,nsdelegate,memory_recursiveprot\n"
    )
    info = detect_cgroup("0::/system.slice/runner.service\n", mountinfo)
    assert info is not None
    assert info.version == 2
    assert info.path == "/system.slice/runner.service"
    assert info.dir == root / "system.slice" / "runner.service"


def test_detect_v2_without_memory_controller(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu io pids\n")
    mountinfo = f"35 24 0:30 / {tmp_path} rw - cgroup2 cgroup2 rw\n"
    assert detect_cgroup("0::/a\n", mountinfo) is None


def test_detect_v1_container_mount_root() -> None:
    # Docker without a cgroup namespace mounts the container's own cgroup as the root.
    mountinfo = (
        "700 690 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
    )
    info = detect_cgroup("4:memory:/docker/abc\n", mountinfo)
    assert info is not None
    assert info.dir == Path("/sys/fs/cgroup/memory")
    # A cgroup outside what the mount shows cannot be read through it.
    assert detect_cgroup("4:memory:/other\n", mountinfo) is None


def test_parse_mountinfo_ignores_other_filesystems() -> None:
    mounts = parse_mountinfo(
        "24 1 8:1 / / rw - ext4 /dev/root rw\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    )
    assert [(m.fstype, m.mountpoint) for m in mounts] == [("cgroup", Path("/sys/fs/cgroup/cpu"))]
    assert "cpu" in mounts[0].options
