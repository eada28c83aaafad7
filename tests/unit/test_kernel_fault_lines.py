"""The kernel's fault lines, read once (kernel_lines.parse_fault_line) for the supervisor, the
bundle's native facts and pasted CI logs: real 6.18 lines recorded here, older formats."""

from __future__ import annotations

import time
from pathlib import Path

from forensics.analyze.logs.kernel import kernel_fault
from forensics.analyze.native import _kernel_frame
from forensics.kernel_lines import FaultLine, parse_fault_line
from forensics.supervise.deathwatch import _kernel_libraries, fault_line_pid

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "kernlog"
RECORDED = (FIXTURES / "fault_lines_6.18_dmesg.txt").read_text().splitlines()
OLDER = (FIXTURES / "fault_lines_older_kernels.txt").read_text().splitlines()


def _line(lines: list[str], needle: str) -> str:
    (line,) = [ln for ln in lines if needle in ln]
    return line


def _parsed(lines: list[str], needle: str) -> FaultLine:
    fault = parse_fault_line(_line(lines, needle))
    assert fault is not None, needle
    return fault


def test_a_recorded_segfault_in_an_extension() -> None:
    fault = _parsed(RECORDED, "python[2914]")
    assert (fault.comm, fault.pid, fault.kind) == ("python", 2914, "segfault")
    assert fault.signal == "SIGSEGV"
    assert (fault.address, fault.ip, fault.sp) == (0, 0x7FF6783BE145, 0x7FFDA1E36440)
    assert (fault.error, fault.library, fault.offset) == (4, "libwidget.so", 0x1145)
    assert (fault.mapping_start, fault.mapping_size, fault.cpu) == (0x7FF6783BE000, 0x1000, 0)
    assert fault.what == "segfault at 0"


def test_recorded_traps_name_their_fault_and_signal() -> None:
    rows = {
        "trap invalid opcode": ("invalid opcode", "SIGILL", 0x10FD),
        "trap divide error": ("divide error", "SIGFPE", 0x1119),
        "general protection fault": ("general protection fault", "SIGSEGV", 0x112B),
        "trap int3": ("int3", "SIGTRAP", 0x1141),
    }
    for needle, (kind, signal, offset) in rows.items():
        fault = _parsed(RECORDED, needle)
        assert (fault.comm, fault.kind, fault.signal) == ("python3.11", kind, signal), needle
        assert (fault.library, fault.offset, fault.error, fault.address) == (
            "libfault.so",
            offset,
            0,
            None,
        )
        assert fault.cpu is None  # 6.18 prints no CPU on a trap line
        assert fault.what == kind


def test_recorded_segfault_variants() -> None:
    nowhere = _parsed(RECORDED, "error 14")  # a call through NULL: the ip is in no file
    assert (nowhere.ip, nowhere.error, nowhere.library, nowhere.offset, nowhere.cpu) == (
        0,
        0x14,
        None,
        None,
        1,
    )
    write = _parsed(RECORDED, "error 6")
    assert (write.address, write.library, write.what) == (
        0x7FEC2C36E000,
        "libfault.so",
        "segfault at 7fec2c36e000",
    )
    program = _parsed(RECORDED, "[25358]")
    assert (program.library, program.offset, program.mapping_start) == (
        "python3.11",
        0x12E9,
        0x559EE2928000,
    )


def test_thread_names_as_the_kernel_prints_them() -> None:
    pool = _parsed(RECORDED, "ThreadPoolExecu")
    assert (pool.comm, pool.pid, pool.library) == ("ThreadPoolExecu", 32014, "libc.so.6")
    # The blank in Python's "Thread-N (target)" name: the whole name, not "(work)".
    named = _parsed(RECORDED, "Thread-3 (work)")
    assert (named.comm, named.pid) == ("Thread-3 (work)", 472)
    fault = kernel_fault(_line(RECORDED, "Thread-3 (work)"), 1, "")
    assert fault is not None and fault.of_tests


def test_code_lines_and_other_kernel_text_are_no_fault_lines() -> None:
    others = [ln for ln in RECORDED if "Code: " in ln]
    others += [
        "general protection fault, probably for non-canonical address 0xdead000000000100: 0000"
        " [#1] PREEMPT SMP NOPTI",
        "CPU: 1 PID: 4242 Comm: python3 Not tainted 6.1.0 #1",
        "Memory cgroup out of memory: Killed process 16640 (python) total-vm:149740kB",
        "nginx[12] bound ip:10.0.0.1 sp:1",  # a trap name the kernel does not print
        "segfault at 0 ip 1 sp 2 error 4",  # no process
    ]
    assert len(others) == 7
    for text in others:
        assert parse_fault_line(text) is None, text
        assert fault_line_pid(text) is None, text


def test_older_kernels_map_without_the_file_offset() -> None:
    old = _parsed(OLDER, "libc-2.27.so")
    assert (old.pid, old.address, old.library, old.offset) == (4521, 0x18, "libc-2.27.so", None)
    assert (old.mapping_start, old.mapping_size, old.cpu) == (0x7F2C9A0A5000, 0x1E7000, None)
    cpu = _parsed(OLDER, "likely on CPU 2")
    assert (cpu.library, cpu.offset, cpu.mapping_start, cpu.cpu) == (
        "libc.so.6",
        None,
        0x7A1C3E428000,
        2,
    )
    assert _parsed(OLDER, "(deleted)").library == "libwidget.so"
    assert (_parsed(OLDER, "memfd:").library, _parsed(OLDER, "memfd:").offset) == (
        "memfd:libffi",
        0x61,
    )


def test_older_trap_lines_with_and_without_their_prefix() -> None:
    rows = {
        "[30117]": ("python3.10", "general protection fault", "SIGSEGV", "libpython3.10.so.1.0"),
        "[2206]": ("python", "general protection", "SIGSEGV", "libc-2.17.so"),
        "[5517]": ("pytest-worker-g", "divide error", "SIGFPE", "libcrypto.so.1.1"),
        "[5822]": ("python3", "divide error", "SIGFPE", "python3.9"),
        "[3105]": ("python", "general protection", "SIGSEGV", "_speedups.so"),
        "[7710]": ("python2.7", "invalid opcode", "SIGILL", "libssl.so.1.0.0"),
    }
    for needle, (comm, kind, signal, library) in rows.items():
        fault = _parsed(OLDER, needle)
        assert (fault.comm, fault.kind, fault.signal, fault.library) == (
            comm,
            kind,
            signal,
            library,
        ), needle
        assert fault.pid == int(needle.strip("[]"))


def test_an_unknown_trap_is_a_fault_line_without_a_signal() -> None:
    line = "traps: python3[77] trap overflow ip:7f01 sp:7ffd error:0 in _ext.so[7f00+2000]"
    fault = parse_fault_line(line)
    assert fault is not None and (fault.kind, fault.signal, fault.pid) == ("overflow", None, 77)
    assert fault_line_pid(line) == 77  # the supervisor keeps the line for the dead pid
    assert kernel_fault(line, 1, line) is None  # the analyzer names no signal it cannot tell


def test_the_three_readers_agree_on_every_line() -> None:
    for text in RECORDED + OLDER:
        fault = parse_fault_line(text)
        if fault is None:
            assert "Code: " in text
            continue
        assert fault_line_pid(text) == fault.pid
        assert _kernel_libraries([text]) == ([fault.library] if fault.library else [])
        frame = _kernel_frame(text)
        if fault.library is None:
            assert frame is None
        else:
            assert frame is not None and frame.library == fault.library
        logged = kernel_fault(text, 3, text)
        assert logged is not None and (logged.pid, logged.library) == (fault.pid, fault.library)


def test_the_lines_pasted_into_the_log_fixtures() -> None:
    logs = FIXTURES.parent / "logs"
    found = {}
    for log in sorted(logs.glob("*.log")):
        for text in log.read_text(errors="replace").splitlines():
            if ("segfault at " in text or "traps: " in text) and "grep" not in text:
                fault = parse_fault_line(text)
                assert fault is not None, text
                found[log.name] = (fault.comm, fault.pid, fault.what, fault.library, fault.cpu)
    assert found == {
        "real_native_gpf_dmesg.log": (
            "python",
            10202,
            "general protection fault",
            "libc.so.6",
            None,
        ),
        # After GitHub's own time stamp: "2026-12-03T06:41:12.5022660Z [21533.152608] ..."
        "real_native_segv_dmesg_gha.log": ("python", 10142, "segfault at 8", "libc.so.6", 0),
        "real_native_serial_dmesg.log": ("python", 14806, "segfault at 8", "libc.so.6", 1),
        "synthetic_oom_other_process_segfault.log": (
            "node",
            4242,
            "segfault at 0",
            "libnode.so.108",
            None,
        ),
    }


def test_a_native_frame_from_a_fault_line() -> None:
    new = _kernel_frame(_line(RECORDED, "python[2914]"))
    assert new is not None and (new.name, new.library) == ("+0x1145", "libwidget.so")
    # Before 6.x only the mapping is printed: the address, not a made-up offset.
    old = _kernel_frame(_line(OLDER, "libc-2.27.so"))
    assert old is not None and (old.name, old.library) == ("0x7f2c9a1b3c4d", "libc-2.27.so")
    trap = _kernel_frame(_line(RECORDED, "general protection fault"))
    assert trap is not None and (trap.name, trap.library) == ("+0x112b", "libfault.so")


def test_hostile_lines_parse_in_linear_time() -> None:
    size = 1 << 20
    hostile = [
        "a" * size + "]: segfault at ",
        "]: segfault at " * (size // 15),
        " ip:" * (size // 4),
        "x[1] trap" + " ip:" * (size // 4),
        "Thread-1 (" * (size // 10) + "[1]: segfault at 0 ip 1 sp 2 error 4",
    ]
    for text in hostile:
        started = time.process_time()
        parse_fault_line(text)
        assert time.process_time() - started < 0.5
