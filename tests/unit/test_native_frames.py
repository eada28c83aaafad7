"""Native frames: pystack and gdb text, the frame to blame, the dying words, 3.14's C stack."""

from __future__ import annotations

import time
from pathlib import Path

from forensics.analyze.native import parse_faulthandler_c_stack, words_in
from forensics.blame import blame_frames
from forensics.collect.cores import CorePattern, parse_gdb, parse_pystack
from forensics.model import Frame

PYSTACK = """\
Using executable found in the core file: /usr/bin/python3

The process died due receiving signal SIGSEGV
Traceback for thread 6000 [] (most recent call last):
    (C) File "???", line 0, in _start (python3)
    (Python) File "/tmp/c12/t.py", line 3, in <module>
        lib.widget_name_length()
    (C) File "/src/_ctypes.c", line 4201, in PyCFuncPtr_call (_ctypes.cpython-311.so)
    (C) File "???", line 0, in ffi_call (libffi.so.8)
    (C) File "/tmp/widget.c", line 9, in widget_name_length (libwidget.so)
    (C) File "../sysdeps/x86_64/multiarch/strlen-evex.S", line 79, in __strlen_evex (libc.so.6)
    (C) File "???", line 0, in __restore_rt (libc.so.6)
    (C) File "../sysdeps/posix/raise.c", line 26, in raise (libc.so.6)
    (C) File "./nptl/pthread_kill.c", line 44, in __pthread_kill_implementation (libc.so.6)

Traceback for thread 6001 [worker] (most recent call last):
    (C) File "???", line 0, in clone3 (libc.so.6)
"""

GDB = """\
Thread 2 (Thread 0x7f00 (LWP 6001)):
#0  0x00007f in __futex_abstimed_wait_common () from /lib/x86_64-linux-gnu/libc.so.6
Thread 1 (Thread 0x7f01 (LWP 6000)):
#0  __pthread_kill_implementation (threadid=<optimized out>) at ./nptl/pthread_kill.c:44
#1  0x00007f in raise (sig=6) at ../sysdeps/posix/raise.c:26
#2  0x00007f in abort () at ./stdlib/abort.c:79
#3  0x00007f in widget_check (count=-3) at widget.c:15
"""


def test_pystack_text_innermost_first() -> None:
    threads = parse_pystack(PYSTACK)
    assert [t.tid for t in threads] == [6000, 6001]
    assert threads[1].name == "worker"
    names = [f.name for f in threads[0].frames]
    assert names[:4] == ["__pthread_kill_implementation", "raise", "__restore_rt", "__strlen_evex"]
    python = next(f for f in threads[0].frames if not f.native)
    assert (python.name, python.file, python.line) == ("<module>", "/tmp/c12/t.py", 3)
    widget = next(f for f in threads[0].frames if f.name == "widget_name_length")
    assert widget.library == "libwidget.so" and widget.line == 9


def test_blame_skips_the_reraise_and_names_the_caller_of_libc() -> None:
    frames = parse_pystack(PYSTACK)[0].frames
    faulting, suspect = blame_frames(frames)
    assert faulting is not None and suspect is not None
    assert (faulting.name, faulting.library) == ("__strlen_evex", "libc.so.6")
    assert (suspect.name, suspect.library) == ("widget_name_length", "libwidget.so")


def test_gdb_text_and_abort_machinery() -> None:
    threads = parse_gdb(GDB)
    assert [t.tid for t in threads] == [6001, 6000]
    faulting, suspect = blame_frames(threads[1].frames)
    assert faulting is not None and faulting.name == "widget_check"
    assert suspect is faulting
    assert threads[0].frames[0].library == "libc.so.6"


def test_dying_words() -> None:
    rust = [
        "..",
        "thread '<unnamed>' panicked at src/lib.rs:12:5:",
        "index out of bounds: the len is 3 but the index is 7",
        "note: run with `RUST_BACKTRACE=1` environment variable to display a backtrace",
    ]
    assert words_in(rust)[0] == "thread '<unnamed>' panicked at src/lib.rs:12:5:"
    cxx = ["terminate called after throwing an instance of 'std::runtime_error'", "  what():  boom"]
    assert words_in(cxx) == cxx
    assert words_in(["libc++abi: terminating due to uncaught exception"]) != []
    plain = ["[gw0] [ 50%] PASSED test_a.py::test_ok", "widgetlib: count < 0", ""]
    assert words_in(plain) == []
    assert words_in(plain, plain=True) == ["widgetlib: count < 0"]


def test_faulthandler_c_stack_of_python_314() -> None:
    text = """Fatal Python error: Segmentation fault

Current thread 0x00007f (most recent call first):
  File "/tmp/t.py", line 3 in <module>

Current thread's C stack trace (most recent call first):
  Binary file "/tmp/libwidget.so", at widget_read+0x10 [0x7f0000001145]
  Binary file "/usr/lib/libffi.so.8" [0x7f0000002000]
  <truncated rest of calls>
"""
    frames = parse_faulthandler_c_stack(text)
    assert [(f.name, f.library) for f in frames] == [
        ("widget_read", "libwidget.so"),
        ("0x7f0000002000", "libffi.so.8"),
    ]


def test_core_pattern_candidates(tmp_path: Path) -> None:
    (tmp_path / "core").write_bytes(b"")
    (tmp_path / "core.4242").write_bytes(b"")
    (tmp_path / "core.python3.4242.1700000000").write_bytes(b"")
    plain = CorePattern("file", "core")
    assert plain.candidates(4242, str(tmp_path)) == [tmp_path / "core"]
    assert plain.candidates(4242, None) == []
    uses_pid = CorePattern("file", "core", uses_pid=True)
    assert uses_pid.candidates(4242, str(tmp_path)) == [tmp_path / "core.4242"]
    full = CorePattern("file", str(tmp_path / "core.%e.%p.%t"))
    assert full.candidates(4242, None) == [tmp_path / "core.python3.4242.1700000000"]
    assert CorePattern("pipe", "|/bin/false").candidates(4242, str(tmp_path)) == []


def test_rust_panic_frames_still_mangled() -> None:
    """As pystack 1.7 printed them for a panic in an `extern "C"` fn (Rust 1.95, debug)."""
    rows = [
        ("__pthread_kill_implementation", "libc.so.6"),
        ("raise", "libc.so.6"),
        ("abort", "libc.so.6"),
        ("???", "librustwidget.so"),
        ("_RNvNtCsjrHSEGnQ3l9_3std9panicking12default_hook", "librustwidget.so"),
        ("_RNCNvNtCsjrHSEGnQ3l9_3std9panicking13panic_handler0B5_", "librustwidget.so"),
        ("???", "librustwidget.so"),
        ("_RNvNtCsgEmfK2I1SDS_4core9panicking16panic_in_cleanup", "librustwidget.so"),
        ("???", "librustwidget.so"),
        ("rustwidget_lookup", "librustwidget.so"),
        ("???", "libffi.so.8"),
        ("ffi_call", "libffi.so.8"),
    ]
    frames = [Frame(name=n, native=True, library=lib) for n, lib in rows]
    faulting, suspect = blame_frames(frames)
    assert faulting is not None and faulting.name == "rustwidget_lookup"
    assert suspect is faulting


def test_unnamed_frame_after_abort_keeps_its_library() -> None:
    rows = [("abort", "libc.so.6"), ("???", "libcrashlib.so"), ("ffi_call", "libffi.so.8")]
    faulting, suspect = blame_frames([Frame(name=n, native=True, library=lib) for n, lib in rows])
    assert faulting is not None and (faulting.name, faulting.library) == ("???", "libcrashlib.so")
    assert suspect is faulting


def test_long_progress_lines_are_read_in_linear_time() -> None:
    """pytest's progress line of a 10,000-test worker: no backtracking on it."""
    started = time.process_time()
    lines = ["." * 5000 + "F" * 10 + "!", "s" * 20000 + " [ 50%]x", "widgetlib: count < 0"]
    assert words_in(lines, plain=True)[-1] == "widgetlib: count < 0"
    assert time.process_time() - started < 1.0


def test_dying_words_are_the_log_scanners() -> None:
    """One rule set: a line the scanner makes a native abort of is a dying word here too."""
    from forensics.analyze.logs.scan import scan_lines

    scanned = [
        "thread 'main' panicked at 'called `Option::unwrap()` on a `None` value', src/main.rs:4:9",
        "thread '<unnamed>' (4242) panicked at src/lib.rs:12:5:",
        "fatal runtime error: stack overflow",
        "terminate called without an active exception",
        "libc++abi: terminating due to uncaught exception of type std::runtime_error: boom",
        "*** Terminating app due to uncaught exception 'NSInvalidArgumentException', reason: 'x'",
        "objc[4242]: +[NSValue initialize] may have been in progress in another thread when"
        " fork() was called.",
        "thread panicked while panicking. aborting.",
    ]
    for line in scanned:
        assert scan_lines([line], "t").native_aborts, line
        assert words_in(["..", line, ""]) == [line], line
    glibc = [
        "python3: src/widget.c:42: widget_check: Assertion `n >= 0' failed.",
        "*** stack smashing detected ***: terminated",
        "free(): invalid pointer",
        "corrupted size vs. prev_size",
        "libc++abi: terminating",
        "thread caused non-unwinding panic. aborting.",
    ]
    for line in glibc:
        assert words_in(["..", line]) == [line], line
    # Rust's hint is no word of the library's.
    assert words_in(["note: run with `RUST_BACKTRACE=1` environment variable"]) == []
