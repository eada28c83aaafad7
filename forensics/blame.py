"""Which frame of a stack to blame: the shared objects that never are, the faulting frame, the
suspect.

Pure functions over frames, shared by ``wrap`` (which resolves the suspects' owners while the
run's environment exists) and the analyzer (which reads what ``wrap`` stored).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from forensics.model import Frame, is_harness_frame

# Frames that deliver or raise the signal rather than cause it: the re-raise of faulthandler
# after the kernel's signal frame (__restore_rt), and the machinery of abort()/panics.
_SIGNAL_FRAME = {"__restore_rt", "__kernel_rt_sigreturn"}
_MACHINERY = re.compile(
    r"^(?:__pthread_kill\w*|pthread_kill(?:@\S+)?|raise|gsignal|abort|__GI_\w+|__libc_message\w*|"
    r"__assert_fail\w*|__fortify_fail|__chk_fail|__stack_chk_fail|__libc_fatal|"
    r"std::terminate|std::__terminate|__cxxabiv1::\w+|__cxa_\w+|__gnu_cxx::\w+|"
    # Rust's std/core (v0 symbols carry a [hash] after the crate name) and its panic runtime.
    r"(?:std|core|alloc|panic_abort|panic_unwind|__rustc)(?:\[[0-9a-f]+\])?::.*|"
    r"rust_panic\w*|__rust_\w+|_Unwind_\w+|faulthandler_\w+|_Py_DumpTraceback\w*|"
    # The same, still mangled (v0 `_R...`, legacy `_ZN...`) where the reader did not demangle.
    r"_R\w*?_(?:3std|4core|5alloc|11panic_abort|12panic_unwind|7___rustc)(?=\d)|"
    r"_ZN(?:3std|4core|5alloc|11panic_abort|12panic_unwind)\d)"
)
# The C and C++ runtimes, the dynamic loader, the interpreter and ctypes' FFI trampoline: on
# every stack, never the one to blame (``strlen`` faults, the library that passed it NULL is).
# The kernel's fault lines name the same objects by file name (logs/kernel.py).
RUNTIME_OBJECT = re.compile(
    r"^(?:libc\.so|libc-|libpthread|ld-linux|libdl|libm\.so|libgcc_s|libstdc\+\+|libc\+\+|"
    r"libunwind|libpython|python(?:\d|$)|_ctypes|libffi)"
)


class _FrameLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def native(self) -> bool: ...
    @property
    def library(self) -> str | None: ...


_F = TypeVar("_F", bound=_FrameLike)


def _named(frames: Sequence[_F], i: int) -> _F:
    """``frames[i]``, or when the reader could not name it (``???``: a return address past a
    noreturn call, an unsymbolized helper) the next named frame of the same object."""
    if frames[i].name != "???":
        return frames[i]
    for frame in frames[i + 1 :]:
        if frame.library != frames[i].library or not frame.native:
            break
        if frame.name != "???" and not _MACHINERY.match(frame.name):
            return frame
    return frames[i]


def blame_frames(frames: Sequence[_F]) -> tuple[_F | None, _F | None]:
    """The faulting frame and the frame to blame, from a crashed thread's frames (innermost first).

    The re-raise above the kernel's signal frame (faulthandler) and the machinery of abort() and
    of panics are skipped; the frame to blame is the first outside the C runtime and the
    interpreter (``strlen`` faults, the library that passed it NULL is to blame).
    """
    start = 0
    for i, frame in enumerate(frames):
        if frame.native and frame.name in _SIGNAL_FRAME:
            start = i + 1
            break
    rest = frames[start:]
    faulting = None
    for i, frame in enumerate(rest):
        if not frame.native:
            break
        if _MACHINERY.match(frame.name):
            continue
        faulting = _named(rest, i)
        break
    suspect = None
    for i, frame in enumerate(rest):
        if not frame.native:
            break
        lib = frame.library or ""
        if _MACHINERY.match(frame.name) or not lib:
            continue  # a Rust panic's std frames live in the extension itself
        if not RUNTIME_OBJECT.match(lib):
            suspect = _named(rest, i)
            break
    if faulting is None:
        faulting = suspect
    return faulting, suspect or faulting


_SITE = re.compile(r"/(?:site|dist)-packages/")


def suspect_frame(frames: Sequence[Frame]) -> str | None:
    """The shared object or installed file to file a bug against: the innermost frame that is
    neither the test harness nor the runtime (innermost comes first)."""
    for frame in frames:
        if frame.native:
            lib = frame.library or ""
            if lib and not RUNTIME_OBJECT.match(lib):
                return lib
            continue
        path = frame.file or ""
        if _SITE.search(path) and not is_harness_frame(frame):
            return path
    return None
