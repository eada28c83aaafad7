"""The netlink proc connector decoder, on datagrams the kernel really sent, and wait statuses."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pytest

from forensics.supervise import procevents
from forensics.supervise.procevents import ProcEvent, decode_wait_status, parse_message

# Captured from Linux 6.18 (x86_64) with a PROC_CN_MCAST_LISTEN socket: process 31356 forked
# 31397, which started a thread (31398) and exited with status 7; then forked 31406, which
# exec'd /bin/sh and died of SIGSEGV.
FORK_PROCESS = bytes.fromhex(
    "4c000000030000006c5001000000000001000000010000006c500100000000002800000001000000"
    "01000000a4557a38440200007c7a00007c7a0000a57a0000a57a00000000000000000000"
)
FORK_THREAD = bytes.fromhex(
    "4c000000030000006d5001000000000001000000010000006d500100000000002800000001000000"
    "01000000c8659b38440200007c7a00007c7a0000a67a0000a57a00000000000000000000"
)
EXIT_THREAD = bytes.fromhex(
    "4c00000003000000755001000000000001000000010000007550010000000000280000000000008001"
    "000000b0b6a13b44020000a67a0000a57a000000000000ffffffff0000000000000000"
)
EXIT_STATUS_7 = bytes.fromhex(
    "4c00000003000000765001000000000001000000010000007650010000000000280000000000008001"
    "0000009e32bd3b44020000a57a0000a57a000000070000110000007c7a00007c7a0000"
)
EXEC = bytes.fromhex(
    "4c000000030000007850010000000000010000000100000078500100000000002800000002000000"
    "010000004099093c44020000ae7a0000ae7a000000000000000000000000000000000000"
)
EXIT_SIGSEGV = bytes.fromhex(
    "4c000000030000007a5001000000000001000000010000007a50010000000000280000000000008001"
    "000000c38d1d3c44020000ae7a0000ae7a00000b000000110000007c7a00007c7a0000"
)


def _untimed(events: list[ProcEvent]) -> list[ProcEvent]:
    return [dataclasses.replace(e, timestamp_ns=None) for e in events]


def test_fork_of_a_process() -> None:
    assert _untimed(parse_message(FORK_PROCESS)) == [ProcEvent("fork", 31397, ppid=31356)]


def test_events_carry_the_kernels_time() -> None:
    fork, exit_ = parse_message(FORK_PROCESS + EXIT_STATUS_7)
    assert fork.timestamp_ns and exit_.timestamp_ns
    assert exit_.timestamp_ns > fork.timestamp_ns  # the captured child lived ~55 ms


def test_threads_are_not_processes() -> None:
    assert parse_message(FORK_THREAD) == []
    assert parse_message(EXIT_THREAD) == []


def test_exit_with_status() -> None:
    assert _untimed(parse_message(EXIT_STATUS_7)) == [ProcEvent("exit", 31397, exit_code=7)]


def test_exec() -> None:
    assert _untimed(parse_message(EXEC)) == [ProcEvent("exec", 31406)]


def test_death_by_signal() -> None:
    assert _untimed(parse_message(EXIT_SIGSEGV)) == [
        ProcEvent("exit", 31406, exit_code=None, signal=signal.SIGSEGV, core_dumped=False)
    ]


def test_several_messages_in_one_datagram() -> None:
    events = parse_message(FORK_PROCESS + FORK_THREAD + EXIT_STATUS_7 + EXIT_SIGSEGV)
    assert [(e.kind, e.pid) for e in events] == [
        ("fork", 31397),
        ("exit", 31397),
        ("exit", 31406),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 3,
        EXIT_SIGSEGV[:30],
        EXIT_SIGSEGV[:-20],
        b"\x00\x00\x00\x00" + EXIT_SIGSEGV[4:],  # length 0: stop, do not loop
        b"\xff" * 200,
    ],
)
def test_truncated_or_garbage_datagrams_never_raise(data: bytes) -> None:
    events = parse_message(data)
    assert all(isinstance(e, ProcEvent) for e in events)


def _status_of(child_body: str) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            if child_body == "exit3":
                os._exit(3)
            elif child_body == "exit0":
                os._exit(0)
            else:
                number = getattr(signal, child_body)
                if number != signal.SIGKILL:
                    signal.signal(number, signal.SIG_DFL)
                os.kill(os.getpid(), number)
                time.sleep(5)
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    return status


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("exit0", (0, None, False)),
        ("exit3", (3, None, False)),
        ("SIGKILL", (None, signal.SIGKILL, False)),
        ("SIGTERM", (None, signal.SIGTERM, False)),
    ],
)
def test_decode_real_wait_statuses(body: str, expected: tuple[object, ...]) -> None:
    assert decode_wait_status(_status_of(body)) == expected


def test_decode_core_dump_bit() -> None:
    # WCOREDUMP: bit 0x80 of a signalled status (SIGSEGV with a core).
    assert decode_wait_status(0x80 | signal.SIGSEGV) == (None, signal.SIGSEGV, True)
    assert decode_wait_status(signal.SIGABRT) == (None, signal.SIGABRT, False)
    # A stopped process (0x7f) is neither exited nor signalled.
    assert decode_wait_status((signal.SIGSTOP << 8) | 0x7F) == (None, None, False)


def test_listener_sees_a_childs_death_live() -> None:
    """The whole path against the live kernel: subscribe, fork, decode the exit."""
    seen: list[ProcEvent] = []
    done = threading.Event()
    listener = procevents.ProcEventListener(lambda e: (seen.append(e), done.set()))
    try:
        listener.open()
    except OSError as exc:
        pytest.skip(f"proc connector unavailable here: {exc}")
    listener.track(os.getpid())
    listener.start()
    try:
        time.sleep(0.1)
        status = _status_of("exit3")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(e.kind == "exit" for e in seen):
            done.wait(0.1)
    finally:
        listener.stop()
    assert decode_wait_status(status) == (3, None, False)
    kinds = [(e.kind, e.exit_code) for e in seen]
    assert ("fork", None) in kinds and ("exit", 3) in kinds
