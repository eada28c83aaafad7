"""faulthandler text -> fault blocks: real output from a crashing interpreter, and the odd
shapes faulthandler prints (named threads, no Python frame, unknown lines, dumps then a crash)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from forensics.faultparse import fatal_block, parse_fault_text

CRASHER = textwrap.dedent(
    """
    import ctypes, faulthandler, sys, threading, time
    fh = open(sys.argv[1], "w")
    faulthandler.enable(file=fh, all_threads=True)
    started = threading.Event()
    def sleeper():
        started.set()
        time.sleep(60)
    threading.Thread(target=sleeper, daemon=True).start()
    started.wait()
    faulthandler.dump_traceback(file=fh, all_threads=True)
    fh.flush()
    def inner():
        ctypes.string_at(0)
    def outer():
        inner()
    outer()
    """
)


@pytest.fixture(scope="module")
def real_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("fault")
    script, log = tmp / "crasher.py", tmp / "fault.log"
    script.write_text(CRASHER)
    proc = subprocess.run([sys.executable, str(script), str(log)], timeout=60, check=False)
    assert proc.returncode == -11
    return log.read_text(), script


def test_real_output_splits_into_a_dump_and_a_fatal_block(real_text: tuple[str, Path]) -> None:
    text, _script = real_text
    blocks = parse_fault_text(text, pid=4242)
    assert [(b.fatal, b.signal) for b in blocks] == [
        (None, None),
        ("Segmentation fault", "SIGSEGV"),
    ]
    dump, fatal = blocks
    assert len(dump.threads) == 2 and len(fatal.threads) == 2
    assert fatal_block(blocks) is fatal
    lines = text.splitlines()
    assert lines[fatal.first_line - 1] == "Fatal Python error: Segmentation fault"
    assert fatal.text.startswith("Fatal Python error: Segmentation fault")


def test_real_output_current_thread_frames_innermost_first(real_text: tuple[str, Path]) -> None:
    text, script = real_text
    fatal = fatal_block(parse_fault_text(text, pid=4242))
    assert fatal is not None and fatal.current is not None
    frames = fatal.current.frames
    assert [f.name for f in frames] == ["string_at", "inner", "outer", "<module>"]
    assert frames[1].file == str(script) and frames[1].line == 14
    assert all(not f.native for f in frames)
    assert fatal.current.pid == 4242 and fatal.current.method == "faulthandler"
    other = next(s for s in fatal.threads if s is not fatal.current)
    assert other.frames[0].name == "sleeper"


def test_abort_with_extension_modules_line() -> None:
    text = textwrap.dedent(
        """\
        Fatal Python error: Aborted

        Current thread 0x00007f0000000001 (most recent call first):
          File "/x/test_a.py", line 7 in test_abort
          File "/x/python.py", line 195 in pytest_pyfunc_call

        Extension modules: numpy.core._multiarray_umath, _cffi_backend (total: 2)
        """
    )
    (block,) = parse_fault_text(text)
    assert (block.fatal, block.signal) == ("Aborted", "SIGABRT")
    assert [f.name for f in block.threads[0].frames] == ["test_abort", "pytest_pyfunc_call"]


@pytest.mark.parametrize(
    ("what", "signal"),
    [
        ("Bus error", "SIGBUS"),
        ("Floating point exception", "SIGFPE"),
        ("Illegal instruction", "SIGILL"),
        ("PyThreadState_Get: no current thread", None),
    ],
)
def test_fatal_names(what: str, signal: str | None) -> None:
    (block,) = parse_fault_text(f"Fatal Python error: {what}\n\nStack (most recent call first):\n")
    assert (block.fatal, block.signal) == (what, signal)
    assert block.threads[0].thread == "unknown"


def test_named_thread_unknown_line_and_no_python_frame() -> None:
    text = textwrap.dedent(
        """\
        Fatal Python error: Segmentation fault

        Thread 0x00000000000000aa [worker-1] (most recent call first):
          <no Python frame>

        Current thread 0x00000000000000bb [MainThread] (most recent call first):
          File "<frozen importlib._bootstrap>", line ??? in _call_with_frames_removed
          File "/x/m.py", line 3 in <module>
        """
    )
    (block,) = parse_fault_text(text)
    assert [s.thread for s in block.threads] == [
        "0x00000000000000aa worker-1",
        "0x00000000000000bb MainThread",
    ]
    assert block.threads[0].frames == []
    assert block.current is block.threads[1]
    assert block.current.frames[0].line is None


def test_two_crashes_in_one_file_are_two_blocks() -> None:
    head = "\n\nCurrent thread 0x{} (most recent call first):\n"
    one = "Fatal Python error: Aborted" + head.format(1) + '  File "a.py", line 1 in f\n'
    two = "Fatal Python error: Segmentation fault" + head.format(2) + '  File "b.py", line 2 in g\n'
    blocks = parse_fault_text(one + "\n" + two)
    assert [b.signal for b in blocks] == ["SIGABRT", "SIGSEGV"]
    assert fatal_block(blocks) is blocks[0]
    assert blocks[1].first_line == 6


def test_noise_between_dumps_ends_a_dump_block() -> None:
    text = (
        'Thread 0x1 (most recent call first):\n  File "a.py", line 1 in f\n'
        "some unrelated line the program printed\n"
        'Thread 0x1 (most recent call first):\n  File "a.py", line 2 in f\n'
    )
    blocks = parse_fault_text(text)
    assert len(blocks) == 2 and all(b.fatal is None for b in blocks)
    assert fatal_block(blocks) is None


@pytest.mark.parametrize(
    "text",
    ["", "\n\n", "\x00\xff garbage", '  File "a.py", line 1 in f\n', "Fatal Python error: "],
)
def test_odd_inputs_never_raise(text: str) -> None:
    blocks = parse_fault_text(text)
    assert all(b.threads == [] for b in blocks)


def test_the_log_scanner_reads_faulthandler_by_these_rules() -> None:
    from forensics import faultparse
    from forensics.analyze.logs import patterns

    assert patterns.FATAL is faultparse.FATAL_RE
    assert patterns.FH_THREAD is faultparse.THREAD_RE
    assert patterns.FH_STACK is faultparse.STACK_RE
    assert patterns.FH_FRAME is faultparse.FRAME_RE
    assert patterns.FH_TIMEOUT is faultparse.TIMER_RE
    assert patterns.WINDOWS_FATAL is faultparse.WINDOWS_FATAL


def test_windows_fatal_exception_is_a_fatal_block() -> None:
    text = (
        "Windows fatal exception: access violation\n\n"
        "Current thread 0x000017a4 (most recent call first):\n"
        '  File "C:\\\\a\\\\test_x.py", line 9 in test_crash\n'
    )
    [block] = parse_fault_text(text)
    assert (block.fatal, block.signal) == ("access violation", "SIGSEGV")
    assert [f.name for f in block.threads[0].frames] == ["test_crash"]


def test_a_fault_file_is_read_whole_line() -> None:
    """The scanner takes a header with text after it (a CI log splices workers); a fault
    file does not: a header that does not end its line is no header."""
    text = (
        "Fatal Python error: Segmentation fault\n\n"
        "Current thread 0x00007f1c2d6f3740 (most recent call first):\n"
        '  File "/x/test_a.py", line 7 in test_segv\n'
        "Thread 0x00007f1c2b2ee640 (most recent call first): and more\n"
        '  File "/x/b.py", line 3 in run\n'
    )
    [block] = parse_fault_text(text)
    assert [s.thread for s in block.threads] == ["0x00007f1c2d6f3740"]
    assert [f.name for f in block.threads[0].frames] == ["test_segv"]
