from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from forensics.model import (
    Evidence,
    Frame,
    Incident,
    ProcessTimeline,
    Run,
    Secondary,
    Source,
    Stack,
    TestCounts,
    TimelineTest,
    Triage,
)

T0 = 1_763_900_000.0
XSS = "tests/test_evil.py::test_x[<script>alert(1)</script>]"


def _worker_tests(worker: str, n: int, start: float, crash_at: int | None) -> list[TimelineTest]:
    tests = []
    t = start
    for i in range(n):
        outcome = "passed" if i % 17 else "failed"
        end: float | None = t + 0.4 + (i % 5) * 0.1
        if crash_at is not None and i == crash_at:
            outcome, end = "crashed", None
        tests.append(TimelineTest(f"tests/test_{worker}.py::test_case_{i}", t, end, outcome))
        if end is None:
            break
        t = end + 0.02
    return tests


def sample_triage() -> Triage:
    """A run with one of each incident the views must draw well (see the issue's examples)."""
    gw3_prior = [f"tests/parity/sql/test_dml.py::test_insert_{i}" for i in range(14)]
    segv_stack = Stack(
        pid=4103,
        thread="Current thread 0x00007f3a (most recent call first)",
        method="faulthandler",
        frames=[
            Frame("rs_sparkless_collect", None, None, True, "robin_sparkless/_native.abi3.so"),
            Frame("collect", "/venv/lib/python3.11/site-packages/robin_sparkless/frame.py", 212),
            Frame("test_upper_case", "tests/parity/functions/test_string.py", 48),
            Frame(
                "pytest_pyfunc_call", "/venv/lib/python3.11/site-packages/_pytest/python.py", 159
            ),
        ],
    )
    crash = Incident(
        id="I1",
        cause="native-crash",
        confidence="high",
        summary="gw3 died of SIGSEGV in robin-sparkless 0.11.0 during test_upper_case (call)",
        worker="gw3",
        pid=4103,
        signal="SIGSEGV",
        exit_code=-11,
        test="tests/parity/functions/test_string.py::test_upper_case",
        phase="call",
        prior_tests=gw3_prior,
        native_library="robin_sparkless/_native.abi3.so (robin-sparkless 0.11.0)",
        secondary=[
            Secondary(
                "xdist-internal",
                "INTERNALERROR KeyError: <WorkerController gw3> while replacing the worker",
                "pytest-dev/pytest-xdist#714",
            )
        ],
        evidence=[
            Evidence(
                "faults/4103.log:1",
                "Fatal Python error: Segmentation fault\n\nCurrent thread 0x00007f3a "
                '(most recent call first):\n  File "frame.py", line 212 in collect',
            ),
            Evidence("output.log:812", "[gw3] node down: Not properly terminated"),
        ],
        stacks=[segv_stack],
        repro="pytest -p no:randomly tests/parity/sql/test_dml.py::test_insert_13 "
        "tests/parity/functions/test_string.py::test_upper_case",
        time=T0 + 60,
        extra={"signal_source": "kernel"},
    )
    oom = Incident(
        id="I2",
        cause="oom-kill",
        confidence="high",
        summary="gw5 was killed by the cgroup OOM killer at 1.9 GiB during test_big_join",
        worker="gw5",
        pid=4111,
        signal="SIGKILL",
        test="tests/test_join.py::test_big_join",
        phase="call",
        prior_tests=["tests/test_join.py::test_small_join"],
        evidence=[
            Evidence("system/kernel.log:3", "Memory cgroup out of memory: Killed process 4111")
        ],
        repro="pytest tests/test_join.py::test_small_join tests/test_join.py::test_big_join",
        time=T0 + 80,
        extra={
            "memory": {
                "limit_bytes": 2 * 1024**3,
                "peak_rss_bytes": 1_990_000_000,
                "top_growth": [
                    {"test": "tests/test_join.py::test_big_join", "rss_delta_bytes": 1_400_000_000},
                    {"test": "tests/test_join.py::test_small_join", "rss_delta_bytes": 90_000_000},
                ],
            }
        },
    )
    hang_stacks = [
        Stack(
            pid=4120,
            thread="MainThread",
            method="py-spy",
            state="idle",
            frames=[
                Frame("__lll_lock_wait", None, None, True, "libc.so.6 (system glibc)"),
                Frame("acquire", "/usr/lib/python3.11/threading.py", 320),
                Frame("test_pool_shutdown", "tests/test_pool.py", 30),
            ],
        ),
        Stack(
            pid=4150,
            thread="loky-worker",
            method="py-spy",
            state="D-state",
            frames=[Frame("read", None, None, True, "libc.so.6 (system glibc)")],
        ),
    ]
    hang = Incident(
        id="I3",
        cause="hang",
        confidence="medium",
        summary="gw7 made no progress for 300 s in teardown of test_pool_shutdown",
        worker="gw7",
        pid=4120,
        test="tests/test_pool.py::test_pool_shutdown",
        phase="teardown",
        evidence=[Evidence("events.jsonl:90", "stall: no breadcrumb for 300 s")],
        stacks=hang_stacks,
        time=T0 + 95,
    )
    evil = Incident(
        id="I4",
        cause="python-exception",
        confidence="low",
        summary="<b>Queue is closed</b> & friends",
        test=XSS,
        evidence=[Evidence("output.log:9", "<img src=x onerror=alert(2)>")],
    )
    timelines = []
    for w in range(8):
        worker = f"gw{w}"
        crash_at = {3: 15, 5: 2, 7: 30}.get(w)
        tests = _worker_tests(worker, 40, T0 + 1, crash_at)
        if w == 0:
            tests.append(
                TimelineTest(XSS, tests[-1].end or T0, (tests[-1].end or T0) + 1, "failed")
            )
        memory = [
            (T0 + s, 200_000_000 + s * (25_000_000 if w == 5 else 1_000_000))
            for s in range(0, 90, 2)
        ]
        end_reason = {3: "SIGSEGV", 5: "oom-kill", 7: "hang"}.get(w, "exit 0")
        timelines.append(
            ProcessTimeline(
                pid=4100 + w,
                worker=worker,
                argv=["python", "-c", "from xdist.remote import main"],
                start=T0,
                end=T0 + 100,
                tests=tests,
                memory=[(t, int(m)) for t, m in memory],
                end_reason=end_reason,
            )
        )
    return Triage(
        source=Source("bundle", ["forensics-20251123-4100"]),
        run=Run(
            command=["pytest", "-n", "8", "tests/"],
            exit_code=1,
            duration_s=101.5,
            tests=TestCounts(passed=290, failed=18, error=1, skipped=3),
            start=T0,
            end=T0 + 101.5,
        ),
        incidents=[crash, oom, hang, evil],
        timelines=timelines,
        notes=["py-spy could not attach to pid 4150: ptrace_scope=1"],
        environment={
            "python": "3.11.7",
            "os": "Linux 6.1 (Debian 12)",
            "packages": {"pytest": "8.3.2", "pytest-xdist": "3.6.1", "robin-sparkless": "0.11.0"},
            "redacted": True,
        },
    )
