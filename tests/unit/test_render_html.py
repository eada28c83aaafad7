from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

import forensics.render.html as html_module
from forensics.model import (
    Evidence,
    Frame,
    Incident,
    ProcessTimeline,
    Run,
    Secondary,
    Source,
    Stack,
    TimelineTest,
    Triage,
)
from forensics.model import TestCounts as Counts
from forensics.render.html import incident_view, render_html, run_lengths, timeline_data
from forensics.render.templates import template_dirs

T0 = 1_763_900_000.0
XSS = "tests/test_evil.py::test_x[<script>alert(1)</script>]"


# worker -> (index of the test it died in, that test, how long it ran before the end)
DEATHS = {
    "gw3": (15, "tests/parity/functions/test_string.py::test_upper_case", 0.3),
    "gw5": (2, "tests/test_join.py::test_big_join", 60.0),
    "gw7": (30, "tests/test_pool.py::test_pool_shutdown", 300.0),
}


def _worker_tests(worker: str, n: int, start: float) -> list[TimelineTest]:
    tests = []
    t = start
    death = DEATHS.get(worker)
    for i in range(n):
        outcome = "passed" if i % 17 else "failed"
        end: float | None = t + 0.4 + (i % 5) * 0.1
        if death and i == death[0]:
            tests.append(TimelineTest(death[1], t, None, None))
            break
        tests.append(TimelineTest(f"tests/test_{worker}.py::test_case_{i}", t, end, outcome))
        t = (end or t) + 0.02
    return tests


def _death_time(tests: list[TimelineTest], worker: str) -> float:
    return tests[-1].start + DEATHS[worker][2]


def sample_triage() -> Triage:
    """A run with one of each incident the views must draw well (see the issue's examples)."""
    timelines = []
    for w in range(8):
        worker = f"gw{w}"
        tests = _worker_tests(worker, 40, T0 + 1)
        if w == 0:
            tests.append(
                TimelineTest(XSS, tests[-1].end or T0, (tests[-1].end or T0) + 1, "failed")
            )
        end = _death_time(tests, worker) if worker in DEATHS else (tests[-1].end or T0) + 0.5
        rate = 25_000_000 if w == 5 else 1_000_000
        memory = [(T0 + s, 200_000_000 + int(s * rate)) for s in range(0, int(end - T0), 2)]
        end_reason = {3: "SIGSEGV", 5: "oom-kill", 7: "hang"}.get(w, "exit 0")
        timelines.append(
            ProcessTimeline(
                pid=4100 + w,
                worker=worker,
                argv=["python", "-c", "from xdist.remote import main"],
                start=T0,
                end=end,
                tests=tests,
                memory=memory,
                end_reason=end_reason,
            )
        )
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
        time=timelines[3].end,
        extra={"signal_source": "kernel"},
    )
    oom = Incident(
        id="I2",
        cause="oom-kill",
        confidence="high",
        summary="gw5 was killed by the cgroup OOM killer at 1.9 GiB during test_big_join",
        worker="gw5",
        pid=4105,
        signal="SIGKILL",
        test="tests/test_join.py::test_big_join",
        phase="call",
        prior_tests=["tests/test_join.py::test_small_join"],
        evidence=[
            Evidence("system/kernel.log:3", "Memory cgroup out of memory: Killed process 4105")
        ],
        repro="pytest tests/test_join.py::test_small_join tests/test_join.py::test_big_join",
        time=timelines[5].end,
        memory={
            "limit_bytes": 2 * 1024**3,
            "peak_rss_bytes": 1_990_000_000,
            "top_growth": [
                {"test": "tests/test_join.py::test_big_join", "rss_delta_bytes": 1_400_000_000},
                {"test": "tests/test_join.py::test_small_join", "rss_delta_bytes": 90_000_000},
            ],
        },
    )
    hang_stacks = [
        Stack(
            pid=4107,
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
        pid=4107,
        test="tests/test_pool.py::test_pool_shutdown",
        phase="teardown",
        evidence=[Evidence("events.jsonl:90", "stall: no breadcrumb for 300 s")],
        stacks=hang_stacks,
        time=timelines[7].end,
    )
    evil = Incident(
        id="I4",
        cause="python-exception",
        confidence="low",
        summary="<b>Queue is closed</b> & friends",
        test=XSS,
        evidence=[Evidence("output.log:9", "<img src=x onerror=alert(2)>")],
    )
    return Triage(
        source=Source("bundle", ["forensics-20251123-4100"]),
        run=Run(
            command=["pytest", "-n", "8", "tests/"],
            exit_code=1,
            duration_s=310.5,
            tests=Counts(passed=290, failed=18, error=1, skipped=3),
            start=T0,
            end=T0 + 310.5,
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


class _Collector(HTMLParser):
    """Collects what a browser would see as text and as script, to check escaping."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def test_markup_in_data_never_becomes_markup() -> None:
    html = render_html(sample_triage())
    parsed = _parse(html)
    assert [t for t, _ in parsed.tags].count("script") == 2  # the data block and the code
    assert not any(t in ("img", "b") for t, _ in parsed.tags)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)


def test_data_is_embedded_once_and_round_trips() -> None:
    html = render_html(sample_triage())
    match = re.search(
        r'<script type="application/json" id="timeline-data">(.*?)</script>', html, re.S
    )
    assert match is not None
    data = json.loads(match.group(1))
    assert "<" not in match.group(1)  # tojson escapes it, so the block cannot be closed early
    gw0 = data["rows"][0]
    modules = [
        m for v, count in zip(gw0["m"][::2], gw0["m"][1::2], strict=True) for m in [v] * count
    ]
    names, previous = [], ""
    for k, suffix in zip(gw0["p"], gw0["n"], strict=True):
        previous = previous[:k] + suffix
        names.append(data["modules"][modules[len(names)]] + "::" + previous)
    assert names[-1] == XSS
    assert html.count('id="timeline-data"') == 1


def test_run_lengths() -> None:
    assert run_lengths([0, 0, 0, 1, 0, 0]) == [0, 3, 1, 1, 0, 2]
    assert run_lengths([]) == []


def test_only_tests_named_by_an_incident_are_blamed() -> None:
    data = timeline_data(sample_triage(), [incident_view(i) for i in sample_triage().incidents])
    blamed = {r["worker"]: r["blame"] for r in data["rows"]}
    assert blamed["gw3"] == [15]
    assert blamed["gw5"] == [2]
    assert blamed["gw1"] == []
    kinds = {(m["row"], m["kind"]) for m in data["marks"]}
    assert kinds == {(3, "crash"), (5, "oom"), (7, "hang")}


def test_card_shows_summary_cause_confidence_then_evidence_in_that_order() -> None:
    html = render_html(sample_triage())
    card = html[html.index('id="incident-I1"') :]
    order = [
        card.index("native-crash"),
        card.index("high confidence"),
        card.index("gw3 died of SIGSEGV"),
        card.index("— file the crash against it"),
        card.index("Fatal Python error: Segmentation fault"),
        card.index("pytest-dev/pytest-xdist#714"),
        card.index("rs_sparkless_collect"),
        card.index('class="copy"'),
    ]
    assert order == sorted(order)
    assert 'href="https://github.com/pytest-dev/pytest-xdist/issues/714"' in card


def test_responsible_native_frame_is_marked() -> None:
    view = incident_view(sample_triage().incidents[0])
    native = [f for f in view.stacks[0].frames if f.native]
    assert [f.responsible for f in native] == [True]
    assert not any(
        f.responsible for f in incident_view(sample_triage().incidents[2]).stacks[0].frames
    )


def test_incidents_are_ordered_for_a_person_deciding_what_to_do() -> None:
    t = sample_triage()
    t.incidents.reverse()
    html = render_html(t)
    assert html.index('id="incident-I1"') < html.index('id="incident-I4"')


def test_unredacted_report_carries_a_banner() -> None:
    t = sample_triage()
    assert "NOT REDACTED" not in render_html(t)
    t.environment.pop("redacted")
    assert 'id="not-redacted">NOT REDACTED' in render_html(t)


def test_self_contained() -> None:
    html = render_html(sample_triage())
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!github\.com/pytest-dev)""", html)
    assert "<link" not in html


def test_no_timeline_no_incidents() -> None:
    html = render_html(Triage(source=Source("log", ["ci.log"])))
    assert "No incidents" in html
    assert "No per-process timeline" in html


def test_templates_load_from_the_package_or_checkout() -> None:
    dirs = template_dirs()
    assert dirs, "templates not found"
    assert all((d / "report.html").is_file() and (d / "base.html").is_file() for d in dirs)


def test_over_budget_timelines_keep_only_blamed_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(html_module, "TIMELINE_JSON_BUDGET", 1000)
    t = sample_triage()
    data = timeline_data(t, [incident_view(i) for i in t.incidents])
    gw3 = next(r for r in data["rows"] if r["worker"] == "gw3")
    assert gw3["n"] == []
    assert gw3["named"] == {"15": "test_upper_case"}
    assert len(gw3["s"]) == 16


@pytest.mark.slow
def test_templates_ship_in_the_wheel_and_load_from_it(tmp_path: Path) -> None:
    """The installed package, not the checkout, must find its templates (force-include)."""
    repo = Path(__file__).resolve().parents[2]
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(repo)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    if build.returncode != 0:
        pytest.skip(f"cannot build the wheel here: {build.stderr[-300:]}")
    wheel = next(tmp_path.glob("forensics-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {"forensics/templates/report.html", "forensics/templates/base.html"} <= names
        zf.extractall(site)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from forensics.render.templates import template_dirs, render_report;"
        "print(template_dirs()[0]);"
        "from forensics.render.html import render_html;"
        "from forensics.model import Triage, Source;"
        "print(len(render_html(Triage(source=Source('log', ['x'])))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(site)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == str(site / "forensics" / "templates")
    assert int(out[1]) > 1000


def test_hundreds_of_big_incidents_still_fit_ten_megabytes() -> None:
    t = sample_triage()
    base = t.incidents[0]
    flood = ("x" * 200 + "\n") * 5000
    prior = [f"tests/test_{i}.py::test_{i}" for i in range(2000)]
    big_stack = Stack(1, "main", [Frame(f"fn_{i}", "/venv/lib/mod.py", i) for i in range(500)])
    t.incidents = [
        Incident(
            id=f"I{n}",
            cause=base.cause,
            confidence=base.confidence,
            summary=base.summary,
            test=base.test,
            prior_tests=prior,
            evidence=[Evidence(f"output.log:{k}", flood) for k in range(5)],
            stacks=[big_stack] * 20,
        )
        for n in range(400)
    ]
    html = render_html(t)
    assert len(html.encode()) <= 10 * 1024 * 1024
    assert 'id="incident-I0"' in html
    assert "200 more incidents are in the JSON triage" in html
