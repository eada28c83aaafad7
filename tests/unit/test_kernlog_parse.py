"""Kernel OOM lines: the ones recorded on a real kill here, and the formats of other kernels."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from forensics.collect.kernlog import (
    KernelLog,
    parse_dmesg_raw,
    parse_journal_json,
    parse_kmsg_record,
)
from forensics.kernel_lines import oom_report_lines, parse_oom

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kernlog"
MIB = 1024 * 1024


def _kmsg_records(name: str) -> list[bytes]:
    return [r + b"\n" for r in (FIXTURES / name).read_bytes().split(b"\n") if r]


def test_real_v1_memcg_kill_from_kmsg() -> None:
    lines = [parse_kmsg_record(r, 1000.0) for r in _kmsg_records("v1_memcg_kmsg_6.18.raw")]
    assert all(ln is not None for ln in lines)
    kills = parse_oom([ln for ln in lines if ln is not None])
    assert len(kills) == 1
    k = kills[0]
    assert (k.pid, k.process, k.constraint) == (5243, "python3", "memcg")
    memcg = "/process_api/3a0668c18da0d2dc071488bcf7c3dc05/fx_oomprobe"
    assert k.memcg == k.task_memcg == memcg
    assert k.anon_rss_bytes == 153088 * 1024
    assert k.file_rss_bytes == 6632 * 1024
    assert k.total_vm_bytes == 170224 * 1024
    assert k.memcg_limit_bytes == 150 * MIB
    assert k.memcg_usage_bytes == 150 * MIB
    assert (k.invoked_by, k.order, k.uid, k.oom_score_adj) == ("python3", 0, 0, 0)
    assert k.gfp_mask == "0xcc0(GFP_KERNEL)"
    assert k.monotonic_us == 630568952
    assert k.time == pytest.approx(1000.0 + 630.568952)
    assert k.lines[-1].startswith("Memory cgroup out of memory: Killed process 5243")


def test_kmsg_record_fields() -> None:
    rec = b"3,416,630568952,-;Memory cgroup out of memory: Killed process 5243 (a\\x20b)\n"
    line = parse_kmsg_record(rec + b" SUBSYSTEM=memory\n", 0.0)
    assert line is not None
    assert (line.level, line.facility, line.seq, line.monotonic_us) == (3, 0, 416, 630568952)
    assert line.text.endswith("(a b)")  # \x20 unescaped, dictionary line dropped
    user = parse_kmsg_record(b"12,9,5,-;from user space\n", 0.0)
    assert user is not None and (user.facility, user.level) == (1, 4)
    assert parse_kmsg_record(b"garbage without separator", 0.0) is None


def test_global_oom_5_15() -> None:
    text = (FIXTURES / "global_5.15_dmesg.txt").read_text()
    kills = parse_oom(text.splitlines())
    assert len(kills) == 1  # the oom_reaper line is not a second kill
    k = kills[0]
    assert (k.pid, k.process, k.constraint, k.uid) == (48211, "python", "global", 1001)
    assert k.memcg is None
    assert k.task_memcg == "/system.slice/runner-provisioner.service"
    assert k.anon_rss_bytes == 6792480 * 1024
    assert k.invoked_by == "pytest"
    assert k.gfp_mask == "0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP)"


def test_v2_memcg_parent_limit_hit() -> None:
    lines = parse_dmesg_raw((FIXTURES / "memcg_v2_6.5_dmesg.txt").read_text(), 0.0)
    kills = parse_oom(lines)
    assert len(kills) == 1
    k = kills[0]
    assert (k.pid, k.constraint) == (9123, "memcg")
    assert k.memcg == "/actions_job"  # whose limit was hit, not the victim's own cgroup
    assert k.task_memcg == "/actions_job/forensics-3f2a"
    assert k.memcg_limit_bytes == 400 * MIB
    assert k.time == pytest.approx(2211.004767)


def test_legacy_4_4_memcg_and_global() -> None:
    kills = parse_oom((FIXTURES / "legacy_4.4_dmesg.txt").read_text().splitlines())
    assert [(k.pid, k.constraint) for k in kills] == [(4321, "memcg"), (778, "global")]
    memcg, glob = kills
    assert memcg.memcg == memcg.task_memcg == "/docker/0f1e2d"
    assert memcg.memcg_limit_bytes == 200 * MIB
    assert memcg.anon_rss_bytes == 201748 * 1024
    assert memcg.uid is None  # 4.x prints no UID
    # 4.x chose pid 777 but killed its child 778: the victim is what counts.
    assert glob.process == "stress"
    assert glob.gfp_mask == "0x24280ca(GFP_HIGHUSER_MOVABLE|__GFP_ZERO)"
    # The "memory: usage" context of the first report must not leak into the second.
    assert glob.memcg_limit_bytes is None


def test_unlimited_memcg_limit_is_none() -> None:
    kills = parse_oom(
        [
            "memory: usage 10kB, limit 9007199254740988kB, failcnt 0",
            "Out of memory: Killed process 5 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB, "
            "shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:1000",
        ]
    )
    assert kills[0].memcg_limit_bytes is None
    assert kills[0].oom_score_adj == 1000


def test_oom_report_lines_keep_report_only() -> None:
    lines = parse_dmesg_raw("<6>[ 1.0] eth0: link up\n", 0.0) + parse_dmesg_raw(
        (FIXTURES / "memcg_v2_6.5_dmesg.txt").read_text(), 0.0
    )
    kept = oom_report_lines(lines)
    assert "eth0" not in " ".join(ln.text for ln in kept)
    assert kept[0].text.startswith("python invoked oom-killer")
    assert kept[-1].text.startswith("Memory cgroup out of memory: Killed process 9123")
    assert kept[-1].format().startswith("<3>[   2211.004767] Memory cgroup")


def test_journal_json() -> None:
    out = (
        '{"MESSAGE":"Out of memory: Killed process 7 (py) total-vm:1kB","PRIORITY":"3",'
        '"__REALTIME_TIMESTAMP":"1700000000123456","_SOURCE_MONOTONIC_TIMESTAMP":"5000000"}\n'
        '{"MESSAGE":[104,105],"PRIORITY":"6","__REALTIME_TIMESTAMP":"1","__MONOTONIC_TIMESTAMP":"2"}\n'
        "not json\n"
    )
    lines = parse_journal_json(out)
    assert [ln.text for ln in lines][1] == "hi"
    assert lines[0].time == pytest.approx(1700000000.123456)
    assert parse_oom(lines)[0].pid == 7


@pytest.mark.root
def test_kmsg_reader_sees_only_new_lines() -> None:
    if os.geteuid() != 0 or not os.access("/dev/kmsg", os.R_OK | os.W_OK):
        pytest.skip("needs root to read and write /dev/kmsg")
    log = KernelLog.open()
    assert log is not None and log.source == "kmsg"
    try:
        marker = f"forensics-test-marker-{os.getpid()}-{time.monotonic_ns()}"
        with open("/dev/kmsg", "w") as fh:
            fh.write(marker + "\n")
        new = log.read_new()
        mine = [ln for ln in new if ln.text == marker]
        assert len(mine) == 1
        assert mine[0].facility == 1  # user-space writes are LOG_USER
        assert abs(mine[0].time - time.time()) < 5
        assert log.read_new() == [] or all(ln.text != marker for ln in log.read_new())
    finally:
        log.close()
