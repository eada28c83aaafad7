"""Regressions from a review of the analyzer: CI times mistaken for live-log records, another
program's kernel fault taken for the tests', regular expressions a hostile line makes
quadratic, out-of-order live-log times, and bundle JSON of the wrong type or size.

The two logs read here are crafted (tests/fixtures/logs/SYNTHETIC.md); the hostile lines are
built in the tests.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from forensics import model
from forensics.analyze.console import _line_times, console_events, enrich_from_console
from forensics.analyze.logs import analyze_logs, timing
from forensics.analyze.logs.analyze import scan_path
from forensics.analyze.logs.kernel import kernel_fault
from forensics.analyze.logs.native_aborts import NATIVE_LABEL
from forensics.analyze.logs.progress import count
from forensics.analyze.logs.timing import DAY_S, duration_row
from forensics.analyze.sigint import sigint_reasons
from forensics.blame import RUNTIME_OBJECT
from forensics.model import Incident

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
REAL_MAC_REPORT = LOGS / "real_gpgsync_macos_crash_report.log"
HOSTILE = 64 << 10  # the scanner's longest line


def _seconds(work: object, *args: object) -> float:
    start = time.process_time()
    work(*args)  # type: ignore[operator]
    return time.process_time() - start


# --- item 4: Jenkins' HH:MM:SS prefix after a live-log header ----------------------------------


def test_a_segfault_under_jenkins_times_after_a_live_log_section_is_a_crash() -> None:
    (incident,) = analyze_logs([str(LOGS / "synthetic_jenkins_livelog_segv.log")]).incidents
    assert (incident.cause, incident.signal, incident.confidence) == (
        "native-crash",
        "SIGSEGV",
        "high",
    )


def test_a_trigger_line_ends_a_live_log_section_even_when_it_starts_with_a_time(
    tmp_path: Path,
) -> None:
    # log_cli_format with %(asctime)s, no CI prefix: the header has no time, the records do.
    log = tmp_path / "ll.log"
    log.write_text(
        "tests/test_a.py::test_one \n"
        "-------------------------------- live log call ---------------------------------\n"
        "12:00:06 INFO     root:test_a.py:5 hello\n"
        "12:00:09 Fatal Python error: Segmentation fault\n"
        "\n"
        "Current thread 0x00007f0000000001 (most recent call first):\n"
        '  File "/src/tests/test_a.py", line 9 in test_one\n'
        "Segmentation fault (core dumped)\n"
    )
    scan = scan_path(str(log))
    assert [f.signal for f in scan.faults] == ["SIGSEGV"]
    assert scan.times.live["tests/test_a.py::test_one"] == (43206.0, 43206.0)


def test_a_timeout_dump_under_jenkins_times_keeps_its_stack(tmp_path: Path) -> None:
    # The real live-log run, as Jenkins' timestamper would show it: the dump's frames are not
    # the test's logging records because each line starts with a time.
    real = (LOGS / "real_facts_livelog.log").read_text().splitlines()
    jenkins = tmp_path / "jenkins.log"
    jenkins.write_text(
        "".join(f"07:{i // 60 % 60:02d}:{i % 60:02d}  {ln}\n" for i, ln in enumerate(real))
    )
    (plain,) = analyze_logs([str(LOGS / "real_facts_livelog.log")]).incidents
    (timed,) = analyze_logs([str(jenkins)]).incidents
    assert (
        (timed.cause, timed.test)
        == (plain.cause, plain.test)
        == (
            "hang",
            "test_spin_log.py::test_spin_logging",
        )
    )
    # The dump is read, not swallowed as logging.  (Its first frames only: the Jenkins strip
    # in decorations.py takes the indentation with the time, which ends the stack early.)
    head = [f.name for f in timed.stacks[0].frames] if timed.stacks else []
    assert head and head == [f.name for f in plain.stacks[0].frames][: len(head)]


# --- item 5: another program's segfault against a confirmed OOM kill ---------------------------


def test_another_programs_kernel_segfault_does_not_override_an_oom_kill() -> None:
    (incident,) = analyze_logs([str(LOGS / "synthetic_oom_other_process_segfault.log")]).incidents
    assert (incident.cause, incident.signal) == ("oom-kill", "SIGKILL")
    assert incident.native_library is None
    assert not any("segfault" in e.excerpt for e in incident.evidence)


def test_only_the_interpreters_faults_are_the_tests() -> None:
    line = "{}[4242]: segfault at 0 ip 00007f3a sp 00007ffd error 4 in libx.so[7f3a0000+1000]"
    owns = {
        comm: fault.of_tests
        for comm in ("python3.11", "python", "pytest", "pt_main_thread", "node", "postgres")
        if (fault := kernel_fault(line.format(comm), 1, "")) is not None
    }
    assert owns == {
        "python3.11": True,
        "python": True,
        "pytest": True,
        "pt_main_thread": True,
        "node": False,
        "postgres": False,
    }


# --- item 13: one list of runtime objects ------------------------------------------------------


def test_the_kernel_and_the_frame_blame_share_the_runtime_objects() -> None:
    line = "python[1]: segfault at 0 ip 00007f3a sp 00007ffd error 4 in {}[7f3a0000+1000]"
    for lib in ("libc.so.6", "libdl.so.2", "python3.11", "python", "libpython3.11.so.1.0"):
        fault = kernel_fault(line.format(lib), 1, "")
        assert fault is not None and RUNTIME_OBJECT.match(lib), lib
        assert fault.blame is None, lib
    fault = kernel_fault(line.format("_ext.cpython-311-x86_64-linux-gnu.so"), 1, "")
    assert fault is not None and fault.blame == "_ext.cpython-311-x86_64-linux-gnu.so"


# --- items 8 and 9: a hostile line parses in linear time ---------------------------------------


def test_a_hostile_durations_row_is_linear() -> None:
    hostile = "1.0s call a" + " " * HOSTILE + "b"  # each blank tried as the end of the id
    assert _seconds(duration_row, hostile) < 2.0  # was 17 s
    assert duration_row("1.50s call   tests/x.py::test_y[a b]   ") == (
        "tests/x.py::test_y[a b]",
        "call",
        1.5,
    )


def test_a_hostile_durations_table_in_a_log_is_linear(tmp_path: Path) -> None:
    log = tmp_path / "dur.log"
    row = "1.0s call a" + " " * (HOSTILE - 16) + "b\n"
    log.write_text("collected 1 item\n==== slowest durations ====\n" + row)
    assert _seconds(scan_path, str(log)) < 2.0  # was a minute and more


def test_a_hostile_line_naming_a_segfault_is_linear() -> None:
    # Found with the review's items: the process name was unbounded in an unanchored search.
    for hostile in ("segfault at " + "a" * HOSTILE, "a" * HOSTILE + " segfault at 0"):
        assert _seconds(kernel_fault, hostile, 1, "") < 2.0  # was 40 s
    long_name = "x" * 100 + "[7]: segfault at 0 ip 1 sp 2 error 4 in libx.so[1+2]"
    fault = kernel_fault(long_name, 1, "")
    assert fault is not None and (fault.pid, fault.library) == (7, "libx.so")


def test_a_hostile_progress_line_is_linear() -> None:
    hostile = b"x.py::" * (4 * HOSTILE // 6) + b"\n"  # the pass reads whole lines, uncapped
    counts = model.TestCounts()
    assert _seconds(count, hostile, counts) < 2.0  # was 16 s
    assert counts == model.TestCounts()
    count(b"tests/x.py::test_a[p::q] PASSED    [ 50%]\n", counts)
    assert counts.passed == 1


def test_hostile_plugins_and_summary_lines_are_linear(tmp_path: Path) -> None:
    # Found by this stop's review: each start of a long word was tried to the line's end.
    log = tmp_path / "header.log"
    log.write_text(
        "plugins: " + "a" * HOSTILE + "\n== 1 failed " + "1" * HOSTILE + " in 1.0s ==\n"
        "plugins: anyio-4.2.0, xdist-3.5.0, timeout-2.3.1\n== 2 failed, 3 passed in 1.5s ==\n"
    )
    assert _seconds(scan_path, str(log)) < 2.0  # were 39 s and 32 s
    scan = scan_path(str(log))
    assert scan.summary is not None and scan.summary.counts.failed == 2
    assert scan.header.plugins == {"anyio": "4.2.0", "xdist": "3.5.0", "timeout": "2.3.1"}


# --- item 10: live-log records a few milliseconds out of order ----------------------------------


def test_out_of_order_live_log_times_do_not_add_a_day() -> None:
    times = timing.TestTimes()
    times.add_live("t", 100.020)
    times.add_live("t", 100.005)  # another thread's record, printed late
    times.add_live("t", 101.0)
    assert times.live["t"] == (100.005, 101.0)
    # Past midnight is still one: 23:59:59 then 00:00:01.
    times.add_live("m", DAY_S - 1)
    times.add_live("m", 1.0)
    assert times.live["m"] == (DAY_S - 1, DAY_S + 1)


# --- item 11: bundle JSON of the wrong type or size ---------------------------------------------


def test_a_wakeup_list_that_is_not_a_list_is_ignored() -> None:
    for value in (5, "pipe", {"kind": "pipe"}, 1.5, True):
        assert sigint_reasons({"pid": 7, "full_wakeup": value}) == []


def test_a_size_note_too_big_for_a_float_is_skipped(tmp_path: Path) -> None:
    output = tmp_path / "output.log"
    output.write_text("aaaa\nbbbb\n")
    (tmp_path / "output.idx.jsonl").write_text(
        '{"offset": 5, "t": ' + "9" * 400 + "}\n"
        '{"offset": 5, "t": NaN}\n' + json.dumps({"offset": 10, "t": 101.0}) + "\n"
    )
    assert _line_times(output, {1, 2}) == {1: 101.0, 2: 101.0}


# --- item 12: the console names every runtime as the log scanner does ---------------------------


def _death(signal: str) -> Incident:
    return Incident(
        id="", cause="native-crash", confidence="high", summary="died", signal=signal, time=50.0
    )


def _console(tmp_path: Path, text: str) -> Path:
    output = tmp_path / "output.log"
    output.write_text(text)
    (tmp_path / "output.idx.jsonl").write_text(
        json.dumps({"offset": len(text.encode()), "t": 50.0}) + "\n"
    )
    return output


def test_a_libcxx_abort_on_the_console_is_named_in_words(tmp_path: Path) -> None:
    text = (
        "collected 1 item\n"
        "libc++abi: terminating due to uncaught exception of type std::runtime_error: boom\n"
    )
    abort = _death("SIGABRT")
    found = enrich_from_console([abort], _console(tmp_path, text))
    assert found.matched == 1
    assert abort.summary == f"died after {NATIVE_LABEL['cxx-uncaught']}: std::runtime_error: boom"


def test_a_macos_crash_report_keeps_its_own_signal(tmp_path: Path) -> None:
    # The real report says SIGABRT; the same report of a bad access says SIGSEGV.
    text = REAL_MAC_REPORT.read_text().replace("EXC_CRASH (SIGABRT)", "EXC_BAD_ACCESS (SIGSEGV)")
    output = _console(tmp_path, text)
    assert [e.signal for e in console_events(output)[0]] == ["SIGSEGV"]
    segv = _death("SIGSEGV")
    assert enrich_from_console([segv], output).matched == 1
    assert "macOS crash report" in segv.summary
