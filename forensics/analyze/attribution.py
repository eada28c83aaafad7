"""Whom to file the bug against: the shared object or package a crash or hang is in.

Native frames (py-spy) name their shared object; faulthandler gives only Python frames, where
the innermost frame outside the test harness names the package whose native code was called.
Either way the owning distribution and its version come from the installed packages' RECORD
files (:mod:`forensics.collect.nativelib`).
"""

from __future__ import annotations

import re

from forensics.collect.nativelib import attribute_library
from forensics.model import Frame, Incident, is_harness_frame

# The C runtime, the interpreter and ctypes' FFI trampoline: on every stack, never the culprit.
_SYSTEM_LIBS = re.compile(
    r"^(?:libc\.so|libpthread|ld-linux|libpython|libdl|libm\.so|python3|libffi)"
)
_SITE = re.compile(r"/(?:site|dist)-packages/")


def _suspect_frame(frames: list[Frame]) -> str | None:
    """The innermost frame that is neither harness nor libc/libpython (innermost comes first)."""
    for frame in frames:
        if frame.native:
            lib = frame.library or ""
            if lib and not _SYSTEM_LIBS.match(lib) and not lib.startswith("_ctypes"):
                return lib
            continue
        path = frame.file or ""
        if _SITE.search(path) and not is_harness_frame(frame):
            return path
    return None


def attribute(incident: Incident) -> str | None:
    """Set ``incident.native_library`` (and frames' libraries) from its first stack."""
    if incident.cause not in ("native-crash", "hang") or not incident.stacks:
        return None
    frames = incident.stacks[0].frames
    hang = incident.extra.get("hang")
    busy = isinstance(hang, dict) and hang.get("activity") == "busy"
    if busy and (hang.get("recursion") or any(not f.native for f in frames)):  # type: ignore[union-attr]
        # Busy in Python code: whatever native frame was on top when sampled is not the hang.
        return None
    suspect = _suspect_frame(frames)
    if suspect is None:
        return None
    library = attribute_library(suspect)
    if library is None or library.distribution is None:
        return None
    incident.native_library = str(library)
    return library.owner()
