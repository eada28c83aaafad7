"""Where a hang waits: the innermost Python frame, and its caller when that is the stdlib."""

from __future__ import annotations

from forensics.analyze.hangs import _innermost_python
from forensics.model import Frame, Stack


def _stack(*frames: Frame) -> Stack:
    return Stack(pid=1, thread="1 MainThread", frames=list(frames))


def test_a_wait_in_the_standard_library_names_its_caller() -> None:
    stack = _stack(
        Frame("futex_wait", None, None, native=True, library="libc.so.6"),
        Frame("_wait_for_tstate_lock", "/usr/lib/python3.11/threading.py", 1132),
        Frame("join", "/usr/lib/python3.11/threading.py", 1112),
        Frame("test_lock_order", "/src/tests/test_locks.py", 24),
        Frame("pytest_pyfunc_call", "/venv/lib/python3.11/site-packages/_pytest/python.py", 187),
    )
    assert _innermost_python(stack) == (
        "_wait_for_tstate_lock (/usr/lib/python3.11/threading.py:1132), "
        "called from test_lock_order (/src/tests/test_locks.py:24)"
    )


def test_a_wait_in_the_users_code_is_named_alone() -> None:
    site = "/venv/lib/python3.11/site-packages/lib/client.py"
    stack = _stack(Frame("recv", site, 10), Frame("test_x", "/src/t.py", 3))
    assert _innermost_python(stack) == f"recv ({site}:10)"
