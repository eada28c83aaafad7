"""Raw logs of a real pytest-timeout thread-method exit (tests/fixtures/logs/REAL_TIMEOUT_THREAD.md)
and seed 000's excerpt: what the log holds decides how sure the triage may be."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from forensics.analyze.logs import analyze_logs
from forensics.analyze.logs.analyze import scan_path
from forensics.model import Incident

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
TEST = "test_runaway.py::test_runaway_recursion"


def _dead_worker(name: str) -> Incident:
    triage = analyze_logs([str(LOGS / name)])
    (incident,) = [i for i in triage.incidents if i.test == TEST]
    return incident


def _rows(incident: Incident) -> dict[str, dict[str, Any]]:
    return {row["cause"]: row for row in incident.extra["differential"]}


def test_session_header_and_a_dead_workers_silence_are_read() -> None:
    scan = scan_path(str(LOGS / "real_timeout_thread_v_gha.log"))
    head = scan.header
    assert (head.timeout_s, head.timeout_method, head.workers) == (5.0, "thread", 2)
    assert head.python == "3.11.7" and head.platform == "linux" and head.pytest == "9.2.0"
    assert head.plugins["timeout"] == "2.4.0" and head.plugins["xdist"] == "3.8.0"
    (down,) = scan.node_downs
    # gw1's own last line ("[gw1] [ 16%] FAILED test_fails") came 5.03 s before it went down.
    assert down.silent_of == "worker"
    assert down.silent_s == pytest.approx(5.026, abs=0.001)
    assert down.since_begin_s == pytest.approx(5.052, abs=0.001)


def test_timestamped_verbose_log_shows_the_timer_exit() -> None:
    incident = _dead_worker("real_timeout_thread_v_gha.log")
    assert (incident.cause, incident.confidence, incident.worker) == ("hang", "medium", "gw1")
    assert "after 5.0 s of silence" in incident.summary
    assert "os._exit(1)" in incident.summary
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "most likely"
    assert "the worker printed nothing for 5.0 s before it went down" in rows["hang"]["for"]
    # Nothing in a console log can exclude a signal: the crash stays open, not ruled out.
    assert rows["native-crash"]["verdict"] == "not excluded"
    assert incident.signature == "hang test_runaway.py::test_runaway_recursion"
    # The header lines that make it a hang are cited first.
    assert [e.excerpt for e in incident.evidence[:2]] == ["timeout: 5.0s", "timeout method: thread"]
    assert incident.evidence[0].source.endswith("real_timeout_thread_v_gha.log:7")


@pytest.mark.parametrize("name", ["real_timeout_thread.log", "real_timeout_thread_gha.log"])
def test_header_without_a_dated_silence_makes_the_timer_possible(name: str) -> None:
    incident = _dead_worker(name)
    assert (incident.cause, incident.confidence) == ("hang", "low")
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "possible"
    assert rows["native-crash"]["verdict"] == "not excluded"
    assert "a native crash is not excluded" in incident.summary


@pytest.mark.parametrize("name", ["real_timeout_thread_q.log", "real_timeout_thread_q_gha.log"])
def test_quiet_log_without_header_cannot_tell(name: str) -> None:
    # -q drops the session header: nothing says pytest-timeout was on.
    incident = _dead_worker(name)
    assert (incident.cause, incident.confidence) == ("native-crash", "low")
    rows = _rows(incident)
    assert rows["native-crash"]["verdict"] == rows["hang"]["verdict"] == "possible"
    assert "native crash or timeout exit" in incident.summary
    assert "cannot tell" in incident.summary


def test_seed000_excerpt_lists_both_and_is_never_a_confident_crash() -> None:
    triage = analyze_logs([str(LOGS / "pasted_story000_snippet.log")])
    assert [i.worker for i in triage.incidents] == ["gw8", "gw10", "gw11"]
    for incident in triage.incidents:
        assert incident.cause == "native-crash" and incident.confidence == "low"
        assert "native crash or timeout exit" in incident.summary
        rows = _rows(incident)
        assert rows["native-crash"]["verdict"] == "possible"
        assert rows["hang"]["verdict"] == "possible"
        assert any("no session header" in x for x in rows["hang"]["against"])
        assert rows["oom-kill"]["verdict"] == rows["unexpected-exit"]["verdict"] == "possible"


def test_every_incident_of_a_log_carries_a_differential() -> None:
    for path in sorted(LOGS.glob("*.log")):
        for incident in analyze_logs([str(path)]).incidents:
            assert incident.extra.get("differential"), (path.name, incident.summary)


@pytest.mark.parametrize(
    ("prefix", "name"),
    [
        (r"[\1Z] ", "jenkins"),  # Jenkins timestamper: [2026-12-03T03:09:19.533547Z]
        (r"\1Z 00O ", "gitlab"),  # GitLab: 2026-12-03T03:09:19.533547Z 00O
    ],
)
def test_other_ci_timestamps_date_the_silence_too(prefix: str, name: str, tmp_path: Path) -> None:
    # The same real log with the GitHub prefix rewritten into another CI's format.
    text = (LOGS / "real_timeout_thread_v_gha.log").read_text()
    rewritten = re.sub(r"(?m)^(\S+T[\d:]+\.\d{6})\dZ ", prefix, text)
    assert rewritten != text
    path = tmp_path / f"{name}.log"
    path.write_text(rewritten)
    (down,) = scan_path(str(path)).node_downs
    assert down.silent_of == "worker" and down.silent_s == pytest.approx(5.026, abs=0.001)
    (incident,) = [i for i in analyze_logs([str(path)]).incidents if i.test == TEST]
    assert (incident.cause, incident.confidence) == ("hang", "medium")


@pytest.mark.parametrize(
    "name", ["001_xdist_os_exit_max_crashed.log", "025_xdist_oom_internalerror_jenkins.log"]
)
def test_a_worker_dead_without_a_dump_leaves_sigkill_and_os_exit_open(name: str) -> None:
    # Corpus 001 (os._exit in every test) and 025 (an OOM kill): each log shows only that the
    # worker went down; neither cause can be told from a crash, so none is made primary.
    corpus = Path(__file__).parent.parent / "corpus" / "logs"
    incident = analyze_logs([str(corpus / name)]).incidents[0]
    assert (incident.cause, incident.confidence) == ("native-crash", "low")
    rows = _rows(incident)
    assert rows["oom-kill"]["verdict"] == rows["unexpected-exit"]["verdict"] == "possible"
    assert "a SIGKILL (the OOM killer) or os._exit()" in incident.summary
