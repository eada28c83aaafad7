"""trace_pipe lines of the signal tracepoints (recorded on Linux 6.18) -> events."""

from __future__ import annotations

from forensics.collect.sigtrace import code_name, line_time, merge_key, parse_line

GENERATE = (
    "         python3-7044    (   7044) [000] d..1.  5238.630347: signal_generate: "
    "sig=9 errno=0 code=0 comm=python3 pid=7085 grp=1 res=0"
)
DELIVER = (
    "         python3-7044    (   7044) [000] d..1.  5238.529194: signal_deliver: "
    "sig=10 errno=0 code=0 sa_handler=7ff9d7ad4d00 sa_flags=c000000"
)


def test_generate_names_sender_receiver_and_result() -> None:
    event = parse_line(GENERATE, 1000.0)
    assert event is not None
    assert event.event == "generate" and event.signal == "SIGKILL"
    assert (event.sender_pid, event.sender_comm, event.pid) == (7044, "python3", 7085)
    assert event.result == "delivered" and event.code == "user" and event.group is True
    assert abs(event.t - 6238.630347) < 1e-6


def test_deliver_gives_the_disposition() -> None:
    event = parse_line(DELIVER, 0.0)
    assert event is not None
    assert event.event == "deliver" and event.signal == "SIGUSR1"
    assert event.disposition == "handler" and event.handler == 0x7FF9D7AD4D00
    default = parse_line(DELIVER.replace("sa_handler=7ff9d7ad4d00", "sa_handler=0"), 0.0)
    ignored = parse_line(DELIVER.replace("sa_handler=7ff9d7ad4d00", "sa_handler=1"), 0.0)
    assert default is not None and default.disposition == "default"
    assert ignored is not None and ignored.disposition == "ignore"


def test_thread_of_a_process_and_comm_with_dashes() -> None:
    line = GENERATE.replace("python3-7044    (   7044)", "tokio-rt-work-7050 (   7044)")
    event = parse_line(line, 0.0)
    assert event is not None
    assert (event.sender_comm, event.sender_tid, event.sender_pid) == ("tokio-rt-work", 7050, 7044)


def test_results_and_codes() -> None:
    pending = parse_line(GENERATE.replace("res=0", "res=2"), 0.0)
    ignored = parse_line(GENERATE.replace("res=0", "res=1"), 0.0)
    assert pending is not None and pending.result == "already-pending"
    assert ignored is not None and ignored.result == "ignored"
    assert code_name(9, 0x80) == "kernel"
    assert code_name(11, 1) == "SEGV_MAPERR"
    assert code_name(14, -2) == "timer"
    assert code_name(2, -1) == "queue"
    assert code_name(6, -6) == "tkill"


def test_other_lines_are_ignored() -> None:
    assert parse_line("# tracer: nop", 0.0) is None
    assert parse_line("", 0.0) is None
    assert parse_line(GENERATE.replace("sig=9", "sig=x"), 0.0) is None


def test_identical_lines_share_a_key_and_keep_their_time() -> None:
    later = GENERATE.replace("5238.630347", "5238.640000")
    other_receiver = GENERATE.replace("pid=7085", "pid=7086")
    assert merge_key(GENERATE) == merge_key(later)
    assert merge_key(GENERATE) != merge_key(other_receiver)
    assert merge_key(GENERATE) != merge_key(GENERATE.replace("res=0", "res=2"))
    assert merge_key("# tracer: nop") is None
    t = line_time(later, 10.0)
    assert t is not None and abs(t - 5248.64) < 1e-6
