"""Figures of time and kernel lines in raw logs, weighed by the differential.

Every log here is real console output (tests/fixtures/logs/REAL_TIMEOUT_THREAD.md says how each
was made): the figures asserted are the ones pytest, xdist, JUnit and the kernel printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from forensics.analyze.differential import DeathFacts, weigh
from forensics.analyze.logs import analyze_logs
from forensics.analyze.logs.analyze import scan_path
from forensics.analyze.logs.kernel import kernel_fault
from forensics.analyze.logs.timing import (
    duration_row,
    live_log_time,
    timeout_limit,
)
from forensics.model import Incident

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
RECURSION = "test_facts.py::test_runaway_recursion"


def _incident(name: str, test: str) -> Incident:
    (incident,) = [i for i in analyze_logs([str(LOGS / name)]).incidents if i.test == test]
    return incident


def _rows(incident: Incident) -> dict[str, dict[str, Any]]:
    return {row["cause"]: row for row in incident.extra["differential"]}


# --- the durations table, JUnit time, the Timeout line ----------------------------------------


def test_durations_table_is_read_and_the_crash_placeholder_is_not() -> None:
    times = scan_path(str(LOGS / "real_facts_signal.log")).times
    assert times.durations[RECURSION] == {"call": 5.0}
    assert times.durations["test_facts.py::test_slow_ok"] == {"call": 1.5}
    assert len(times.durations) == 5
    # xdist's report of a crashed test: phase "???", duration 0 - no measurement.
    assert duration_row("0.00s ???      test_facts.py::test_runaway_recursion") is None
    assert duration_row("20.01s call     tests/x.py::test_y") == (
        "tests/x.py::test_y",
        "call",
        20.01,
    )


@pytest.mark.parametrize(
    ("name", "figure"),
    [
        ("real_facts_signal.log", "it ran 5.00 s against a 5 s timeout (durations table)"),
        # -q: no session header; the limit is the one the test's own Timeout failure names.
        ("real_facts_signal_q.log", "it ran 5.00 s against a 5 s timeout (durations table)"),
        ("real_facts_signal_junit.xml", "it ran 5.00 s against a 5 s timeout (JUnit time)"),
    ],
)
def test_a_timed_out_test_quotes_how_long_it_ran(name: str, figure: str) -> None:
    incident = _incident(name, RECURSION)
    assert (incident.cause, incident.confidence) == ("hang", "high")
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "most likely"
    assert figure in rows["hang"]["for"]
    assert all(rows[c]["verdict"] == "ruled out" for c in rows if c != "hang")


def test_the_quiet_log_has_no_header_but_the_timeout_line_names_the_limit() -> None:
    scan = scan_path(str(LOGS / "real_facts_signal_q.log"))
    assert scan.header.timeout_s is None
    assert scan.times.limit == 5.0 and scan.times.limit_of(RECURSION) == 5.0
    assert timeout_limit("E   Failed: Timeout (>5.0s) from pytest-timeout.") == 5.0
    assert timeout_limit("Failed: Timeout >300.0s") == 300.0


def test_a_crashed_tests_junit_time_is_no_measurement() -> None:
    # time="0.000" for the test whose worker died: kept, it would say "died 0.0 s in".
    times = scan_path(str(LOGS / "real_facts_thread_junit.xml")).times
    assert RECURSION not in times.junit
    assert times.junit["test_facts.py::test_slow_ok"] == pytest.approx(1.501)
    incident = _incident("real_facts_thread_junit.xml", RECURSION)
    assert _rows(incident)["hang"]["verdict"] == "possible"
    assert not any("into the test" in x for x in _rows(incident)["hang"]["against"])


def test_thread_method_log_without_times_stays_possible_with_a_durations_table() -> None:
    # The table lists the tests that finished; the dead one is not in it.
    incident = _incident("real_facts_thread.log", RECURSION)
    assert (incident.cause, incident.confidence) == ("hang", "low")
    assert RECURSION not in scan_path(str(LOGS / "real_facts_thread.log")).times.durations
    assert _rows(incident)["native-crash"]["verdict"] == "not excluded"


# --- CI timestamps on the test's start ----------------------------------------------------------


def test_the_dead_tests_dated_start_says_it_ran_about_the_timeout() -> None:
    incident = _incident("real_facts_thread_gha.log", RECURSION)
    assert (incident.cause, incident.confidence) == ("hang", "medium")
    hang = _rows(incident)["hang"]
    assert hang["verdict"] == "most likely"
    # "test_facts.py::test_runaway_recursion " at 06:38:02.902, "[gw0] node down" at 07.694.
    assert "it ran 4.79 s against a 5 s timeout (CI timestamps)" in hang["for"]


def test_a_worker_gone_0_2_s_into_its_test_was_not_ended_by_the_timer() -> None:
    incident = _incident("real_early_exit_v_gha.log", "test_exit.py::test_early_exit")
    rows = _rows(incident)
    assert rows["hang"]["verdict"] == "ruled out"
    assert rows["hang"]["against"] == [
        "it died 0.2 s into the test, before the 5.0 s timer (CI timestamps)"
    ]
    # Nothing else speaks: a blind death, not a timeout exit.
    assert (incident.cause, incident.confidence) == ("native-crash", "low")
    assert "timeout exit" not in incident.summary


# --- live-log times (-o log_cli=true) -----------------------------------------------------------


def test_live_log_times_bound_how_long_a_serial_test_ran() -> None:
    scan = scan_path(str(LOGS / "real_facts_livelog.log"))
    spin = "test_spin_log.py::test_spin_logging"
    # 06:39:40 to 06:39:45 (the last line inside the timer's dump), to the second.
    assert scan.times.live[spin] == (6 * 3600 + 39 * 60 + 40.0, 6 * 3600 + 39 * 60 + 45.0)
    assert scan.times.live["test_facts.py::test_ok_1"][0] == 6 * 3600 + 39 * 60 + 40.0
    (dump,) = scan.timeouts
    assert dump.test == spin  # the live-log section names the test the dump does not
    assert len(dump.stacks) == 1 and len(dump.stacks[0].frames) == 33  # dump kept whole
    incident = _incident("real_facts_livelog.log", spin)
    hang = _rows(incident)["hang"]
    assert hang["verdict"] == "most likely"
    assert "it logged for 5 s of its run against a 5 s timeout (live-log times)" in hang["for"]


def test_live_log_time_formats() -> None:
    assert live_log_time("06:39:45 INFO still spinning") == 6 * 3600 + 39 * 60 + 45
    assert live_log_time("2026-12-03 06:39:45,123 INFO x") == pytest.approx(23985.123)
    # A CI stamp before it is the runner's, not the program's: skipped.
    assert live_log_time("2026-12-03T06:40:04.4233620Z 06:40:04 INFO still") == 24004
    assert live_log_time("2026-12-03T06:40:04.4233620Z PASSED") is None
    assert live_log_time("INFO     facts:test_facts.py:27 about to fail") is None


def test_a_lower_bound_never_rules_the_timer_out() -> None:
    facts = DeathFacts(
        source="log", timeout_s=20.0, timeout_method="thread", ran_s=1.0, ran_from="live log"
    )
    facts.ran_at_least = True
    hang = next(h for h in weigh(facts) if h.cause == "hang")
    assert hang.verdict == "possible"


# --- kernel lines -------------------------------------------------------------------------------


def test_a_pasted_segfault_line_makes_a_blind_death_a_native_crash() -> None:
    incident = _incident("real_native_segv_dmesg_gha.log", "test_native.py::test_bad_read")
    # memcpy in libc read the bad address ctypes gave it: libc is named, not blamed.
    assert (incident.cause, incident.signal, incident.native_library) == (
        "native-crash",
        "SIGSEGV",
        None,
    )
    assert incident.confidence == "medium"  # the kernel names a pid, not the xdist worker
    rows = _rows(incident)
    assert rows["native-crash"]["for"][1] == (
        "the kernel logged python[10142]: segfault at 8 in libc.so.6 (SIGSEGV; the C runtime"
        " or the interpreter: look at what called it)"
    )
    assert rows["native-crash"]["verdict"] == "most likely"
    assert all(rows[c]["verdict"] == "ruled out" for c in rows if c != "native-crash")
    assert incident.evidence[0].excerpt.startswith("[21533.152608] python[10142]: segfault at 8")


def test_a_general_protection_trap_is_a_sigsegv_too() -> None:
    incident = _incident("real_native_gpf_dmesg.log", "test_native.py::test_noncanonical_read")
    assert (incident.cause, incident.signal) == ("native-crash", "SIGSEGV")
    assert "(kernel: general protection fault)" in incident.summary


def test_trap_kinds_map_to_their_signals() -> None:
    line = "traps: python3[77] trap invalid opcode ip:7f01 sp:7ffd error:0 in _ext.so[7f00+2000]"
    fault = kernel_fault(line, 1, line)
    assert fault is not None
    assert (fault.signal, fault.library, fault.pid) == ("SIGILL", "_ext.so", 77)
    assert fault.blame == "_ext.so"  # an extension module is blamed, the runtime is not
    assert kernel_fault("traps: python[1] trap divide error ip:1 sp:2 error:0", 1, "") is not None
    assert kernel_fault("it traps: nothing here", 1, "") is None


def test_a_pasted_oom_kill_rules_out_a_native_crash() -> None:
    incident = _incident("real_oom_dmesg_gha.log", "test_hog.py::test_memory_hog")
    assert (incident.cause, incident.signal) == ("oom-kill", "SIGKILL")
    rows = _rows(incident)
    assert rows["oom-kill"]["verdict"] == "most likely"
    assert rows["oom-kill"]["for"] == [
        "the kernel's OOM killer killed python (pid 10517, anon-rss 353 MiB) at a memory"
        " cgroup's limit"
    ]
    assert rows["native-crash"]["verdict"] == "ruled out"
    assert rows["native-crash"]["against"] == [
        "the kernel's OOM killer ended it with SIGKILL, which no crash sends"
    ]
    assert rows["hang"]["verdict"] == "ruled out"
    # The echoed command line names "oom-killer" too; only the kernel's lines are evidence.
    assert not any(e.excerpt.startswith("$ dmesg") for e in incident.evidence)


def test_text_lines_and_the_byte_reader_find_the_same_figures() -> None:
    # A bundle's output.log goes through scan_lines; a CI log through the byte reader.
    from forensics.analyze.logs.scan import scan_lines

    for name in ("real_facts_thread_gha.log", "real_facts_livelog.log", "real_facts_signal.log"):
        path = LOGS / name
        by_bytes = scan_path(str(path)).times
        by_lines = scan_lines(path.read_text().splitlines(keepends=True), name).times
        assert by_lines == by_bytes, name
    assert scan_path(str(LOGS / "real_facts_thread_gha.log")).times.started[RECURSION]


def test_a_serial_run_killed_by_sigsegv_takes_the_kernels_line() -> None:
    # No xdist, no faulthandler: bash's "Segmentation fault" and the exit status say SIGSEGV,
    # the pasted kernel line says where.
    (incident,) = analyze_logs([str(LOGS / "real_native_serial_dmesg.log")]).incidents
    assert (incident.cause, incident.signal) == ("native-crash", "SIGSEGV")
    assert incident.evidence[0].excerpt.startswith("[21902.091788] python[14806]: segfault at 8")
    assert any(
        "python[14806]: segfault at 8 in libc.so.6" in x
        for x in _rows(incident)["native-crash"]["for"]
    )


def test_a_serial_thread_dump_is_dated_by_the_silence_before_its_banner() -> None:
    # The banner lands after the progress dots ("test_facts.py .+++ Timeout +++"), 5.3 s after
    # the line before; the dump names no test, its frames do.
    scan = scan_path(str(LOGS / "real_facts_serial_dump_gha.log"))
    (dump,) = scan.timeouts
    assert dump.line == 10 and dump.silent_s == pytest.approx(5.322, abs=0.001)
    incident = _incident("real_facts_serial_dump_gha.log", RECURSION)
    assert (incident.cause, incident.confidence) == ("hang", "high")
    assert "the log printed nothing for 5.3 s before the dump" in _rows(incident)["hang"]["for"]


def test_a_timeout_line_without_a_header_arms_the_timer_but_not_its_method() -> None:
    armed = "a 'Timeout (>5s)' failure in the log"
    facts = DeathFacts(source="log", timeout_s=5.0, timeout_from=armed, timeout_plugin=True)
    hang = next(h for h in weigh(facts) if h.cause == "hang")
    assert hang.verdict == "possible"
    assert hang.for_ == [f"{armed} shows pytest-timeout armed (5.0 s)"]
    assert "only the thread method ends the worker" in hang.against[0]
    facts.ran_s, facts.ran_from = 0.2, "durations table"
    hang = next(h for h in weigh(facts) if h.cause == "hang")
    assert hang.verdict == "ruled out"
    assert (
        hang.against[-1] == "it died 0.2 s into the test, before the 5.0 s timer (durations table)"
    )


# --- what a reader sees -------------------------------------------------------------------------


def test_markdown_why_not_and_the_html_card_quote_the_figures() -> None:
    from forensics.render.html import render_html
    from forensics.render.markdown import markdown_lines

    names = ["real_early_exit_v_gha.log", "real_oom_dmesg_gha.log", "real_facts_signal.log"]
    triage = analyze_logs([str(LOGS / name) for name in names])
    lines = list(markdown_lines(triage))
    assert (
        "- **hang**: ruled out - it died 0.2 s into the test, before the 5.0 s timer"
        " (CI timestamps)" in lines
    )
    assert (
        "- **native-crash**: ruled out - the kernel's OOM killer ended it with SIGKILL, which no"
        " crash sends" in lines
    )
    html = render_html(triage)
    assert "it ran 5.00 s against a 5 s timeout (durations table)" in html
    assert "the kernel&#39;s OOM killer killed python (pid 10517, anon-rss 353 MiB)" in html
