"""Only an OOM kill of a test interpreter is the death of a test process.

A ``dmesg`` pasted after the tests shows every OOM kill on the machine: the kernel's report of
another program (node, a database, a JVM, a browser) says the machine was out of memory, not
that the worker which died at the same time was the victim.  The reports below are the
kernel's 5.x+ format as a GitHub Actions ``sudo dmesg`` step prints it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs
from forensics.analyze.logs.findings import KillEvent
from forensics.analyze.logs.oom_victims import split_oom

# The pytest output of the two runs; ``_gha`` gives each line the runner's timestamp.
XDIST_LINES = [
    "============================= test session starts ==============================",
    "platform linux -- Python 3.12.8, pytest-8.3.4, pluggy-1.5.0",
    "rootdir: /home/runner/work/app/app",
    "plugins: xdist-3.6.1, timeout-2.3.1",
    "created: 2/2 workers",
    "2 workers [4 items]",
    "",
    "[gw0] [ 25%] PASSED tests/test_api.py::test_list",
    "[gw1] node down: Not properly terminated",
    "[gw1] [ 50%] FAILED tests/test_render.py::test_pdf_export",
    "",
    "replacing crashed worker gw1",
    "[gw0] [ 75%] PASSED tests/test_api.py::test_detail",
    "[gw2] [100%] PASSED tests/test_api.py::test_delete",
    "=========================== short test summary info ============================",
    "FAILED tests/test_render.py::test_pdf_export",
    "===================== 1 failed, 3 passed in 12.00s =============================",
]
PASSING_LINES = [
    "============================= test session starts ==============================",
    "platform linux -- Python 3.12.8, pytest-8.3.4, pluggy-1.5.0",
    "collected 3 items",
    "",
    "tests/test_api.py ...                                                    [100%]",
    "============================== 3 passed in 4.00s ===============================",
]


def _gha(lines: list[str]) -> str:
    return "".join(
        f"2026-01-20T03:00:{n // 10:02d}.{n % 10}000000Z {t}\n" for n, t in enumerate(lines)
    )


XDIST_RUN = _gha(XDIST_LINES)
PASSING_RUN = _gha(PASSING_LINES)


def _dmesg(comm: str, pid: int = 31877) -> str:
    stamp = "2026-01-20T03:00:01.6000000Z"
    return (
        f"{stamp} ##[group]Run sudo dmesg | tail -4\n"
        f"{stamp} [ 4211.902114] {comm} invoked oom-killer: "
        "gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0\n"
        f"{stamp} [ 4211.902301] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
        f"mems_allowed=0,global_oom,task_memcg=/system.slice/runner.service,task={comm},"
        f"pid={pid},uid=1001\n"
        f"{stamp} [ 4211.902340] Out of memory: Killed process {pid} ({comm}) "
        "total-vm:12544820kB, anon-rss:6922112kB, file-rss:0kB, shmem-rss:0kB, UID:1001 "
        "pgtables:15108kB oom_score_adj:0\n"
        f"{stamp} [ 4212.133251] oom_reaper: reaped process {pid} ({comm}), now anon-rss:0kB, "
        "file-rss:0kB, shmem-rss:0kB\n"
        f"{stamp} ##[endgroup]\n"
    )


def _analyze(tmp_path: Path, text: str) -> object:
    log = tmp_path / "ci.log"
    log.write_text(text)
    return analyze_logs([str(log)])


@pytest.mark.parametrize("comm", ["node", "postgres", "java", "chrome"])
def test_another_programs_oom_kill_is_not_the_dead_workers(tmp_path: Path, comm: str) -> None:
    triage = _analyze(tmp_path, XDIST_RUN + _dmesg(comm))
    (incident,) = triage.incidents  # type: ignore[attr-defined]
    assert incident.worker == "gw1"
    assert incident.test == "tests/test_render.py::test_pdf_export"
    assert incident.cause != "oom-kill"
    assert "killed by the kernel OOM killer" not in incident.summary
    # The machine was out of memory: a note in the weighing, not the verdict.
    (row,) = [h for h in incident.extra["differential"] if h["cause"] == "oom-kill"]
    assert row["verdict"] == "possible"
    assert any(f"killed {comm} (pid 31877" in reason for reason in row["for"])
    assert any("out of memory" in reason for reason in row["for"])


@pytest.mark.parametrize("comm", ["python3", "python3.12", "pytest"])
def test_a_test_interpreters_oom_kill_is_the_dead_workers(tmp_path: Path, comm: str) -> None:
    triage = _analyze(tmp_path, XDIST_RUN + _dmesg(comm))
    (incident,) = triage.incidents  # type: ignore[attr-defined]
    assert (incident.cause, incident.worker, incident.signal) == ("oom-kill", "gw1", "SIGKILL")
    assert f"killed {comm} (pid 31877" in incident.extra["differential"][0]["for"][0]


def test_another_programs_oom_kill_alone_is_a_note(tmp_path: Path) -> None:
    triage = _analyze(tmp_path, PASSING_RUN + _dmesg("node"))
    assert triage.incidents == []  # type: ignore[attr-defined]
    notes = [n for n in triage.notes if "OOM" in n]  # type: ignore[attr-defined]
    assert len(notes) == 1
    assert "node (pid 31877" in notes[0] and "not a test process" in notes[0]


def test_each_report_line_belongs_to_its_victim() -> None:
    """The kernel prints a report's context before its "Killed process" line and the reaper
    after it: a report about node ahead of one about python3 keeps its lines apart."""
    lines = (_dmesg("node", 31877) + _dmesg("python3", 48211)).splitlines()
    kills = [
        KillEvent("oom", n, line, "SIGKILL", process=comm, pid=pid)
        for n, line in enumerate(lines, 1)
        if "oom" in line or "Out of memory" in line
        for comm, pid in [_named(line)]
    ]
    tests, elsewhere = split_oom(kills)
    assert [k.line for k in elsewhere] == [2, 3, 4, 5]
    assert [k.line for k in tests] == [8, 9, 10, 11]


def _named(line: str) -> tuple[str | None, int | None]:
    # What the scanner records: the victim's name only on the "Killed process" line.
    if "Killed process" not in line:
        return None, int(line.split("reaped process ")[1].split()[0]) if "reaped" in line else None
    pid, comm = line.split("Killed process ")[1].split()[:2]
    return comm.strip("()"), int(pid)
