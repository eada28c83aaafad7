"""Native truth at the moment of death: frames from the core, the kernel's fault line, last words.

``wrap`` leaves ``stacks/<pid>.native.json`` for every process of the run that died of a fatal
signal: the frames of every thread read from its core (pystack or gdb), the kernel's
``segfault at`` / ``traps:`` lines, and the owning distribution of each shared object, resolved
while the run's environment existed.  This module turns that, plus what the dying library
printed (a Rust panic, a C++ terminate, an abort message) and Python 3.14's faulthandler C
stack, into facts for the incident.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forensics.analyze.bundle_source import BundleData
from forensics.analyze.logs.dying_words import is_dying_word
from forensics.blame import RUNTIME_OBJECT, blame_frames
from forensics.bundle import STACKS_DIR
from forensics.kernel_lines import parse_fault_line
from forensics.model import Evidence, Frame, Incident, Stack
from forensics.owners import Owner
from forensics.stackrecords import frames_from_record

_REARM = {"__restore_rt", "__kernel_rt_sigreturn"}
# Lines of the test runner, not of the dying library.
_RUNNER = re.compile(
    r"^\[gw\d+\]|^[.sFExX\s]+(?:\[\s*\d+%\])?\s*$|^=+ |^_+ |^collected |^created: |"
    r"^\d+ workers? |^bringing up nodes|^replacing crashed worker|^\s*$|^Fatal Python error|"
    r"^Current thread|^Thread 0x|^  File |^Extension modules:|^worker gw\d+ crashed"
)
_OUTPUT_WINDOW = 16 * 1024
_MAX_LINE = 2000
_FAULTHANDLER_C = re.compile(
    r'^\s+Binary file "([^"]+)"(?:, at ([^\s\[]+))?\s*\[(0x[0-9a-fA-F]+)\]'
)


@dataclass
class NativeDeath:
    pid: int
    signal: str | None
    method: str | None  # "pystack" | "gdb" | "kernel" | "faulthandler"
    stacks: list[Stack] = field(default_factory=list)
    # The innermost frame that is not signal or abort machinery, and the first frame outside
    # the C runtime and the interpreter (the library to blame).
    faulting: Frame | None = None
    suspect: Frame | None = None
    library: str | None = None  # "shared object (distribution version)"
    kernel_lines: list[str] = field(default_factory=list)
    last_words: list[str] = field(default_factory=list)
    core: dict[str, Any] | None = None
    stack_s: float | None = None
    problems: list[str] = field(default_factory=list)

    def where(self) -> str | None:
        """``null_to_libc (libcrashlib.so)`` or ``strlen (libc.so.6), called from ...``."""
        if self.faulting is None:
            return None
        text = f"{self.faulting.name} ({self.faulting.library or '?'})"
        if self.suspect is not None and self.suspect is not self.faulting:
            text += f", called from {self.suspect.name} ({self.suspect.library or '?'})"
        return text


def load_native(path: Path, pid: int) -> dict[str, Any] | None:
    file = path / STACKS_DIR / f"{pid}.native.json"
    if not file.is_file() or file.is_symlink():
        return None
    try:
        raw = json.loads(file.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return raw if isinstance(raw, dict) else None


def native_death(data: BundleData, pid: int, fault_text: str | None = None) -> NativeDeath | None:
    """The native facts of ``pid``'s death, or None when the bundle holds none."""
    raw = load_native(data.path, pid)
    c_stack = parse_faulthandler_c_stack(fault_text or "")
    if raw is None and not c_stack:
        return None
    raw = raw or {}
    signal = raw.get("signal") if isinstance(raw.get("signal"), str) else None
    death = NativeDeath(pid=pid, signal=signal, method=_str(raw.get("method")))
    libraries = raw.get("libraries")
    libraries = libraries if isinstance(libraries, dict) else {}
    threads = raw.get("threads")
    threads = threads if isinstance(threads, list) else []
    crashing = raw.get("crashing_tid")
    for thread in threads:
        if not isinstance(thread, dict):
            continue
        frames = frames_from_record(thread, default_name="???")
        tid = thread.get("tid")
        name = thread.get("name")
        label = f"{tid}" + (f" ({name})" if isinstance(name, str) and name else "")
        stack = Stack(pid=pid, thread=label, frames=frames, method=death.method)
        if tid == crashing:
            stack.state = "crashed"
            # Above the kernel's signal frame is faulthandler re-raising the signal: noise.
            cut = next((i for i, f in enumerate(frames) if f.native and f.name in _REARM), -1)
            stack.frames = frames[cut + 1 :]
            death.stacks.insert(0, stack)
        else:
            death.stacks.append(stack)
    if not death.stacks and c_stack:
        death.method = "faulthandler"
        death.stacks.append(Stack(pid=pid, thread="crashed", frames=c_stack, method="faulthandler"))
    kernel = raw.get("kernel_lines")
    if isinstance(kernel, list):
        death.kernel_lines = [ln for ln in kernel if isinstance(ln, str)]
    if death.stacks:
        death.faulting, death.suspect = blame_frames(death.stacks[0].frames)
    elif death.kernel_lines:
        death.method = death.method or "kernel"
        death.faulting = _kernel_frame(death.kernel_lines[0])
        death.suspect = death.faulting
    blame = death.suspect or death.faulting
    if blame is not None and blame.library:
        death.library = _library_text(blame.library, libraries)
    core = raw.get("core")
    death.core = core if isinstance(core, dict) else None
    stack_s = raw.get("stack_s")
    death.stack_s = float(stack_s) if isinstance(stack_s, (int, float)) else None
    problems = raw.get("problems")
    if isinstance(problems, list):
        death.problems = [p for p in problems if isinstance(p, str)]
    offset = raw.get("output_offset")
    captured = raw.get("captured_output")
    if isinstance(captured, list):
        # What pytest captured of the dying test: there first, the run's output second.
        death.last_words = words_in(
            [ln for ln in captured if isinstance(ln, str)], plain=signal == "SIGABRT"
        )
    if not death.last_words and data.output_path is not None and isinstance(offset, int):
        death.last_words = last_words(data.output_path, offset, plain=signal == "SIGABRT")
    return death


def apply_native(incident: Incident, death: NativeDeath) -> None:
    """Native frames first (the crashing thread on top), the library, the dying words."""
    incident.stacks = [*death.stacks, *incident.stacks]
    if death.library:
        incident.native_library = death.library
    where = death.where()
    native: dict[str, Any] = {"method": death.method, "where": where}
    if death.faulting is not None:
        native["function"] = death.faulting.name
        native["object"] = death.faulting.library
    if death.suspect is not None:
        native["suspect_function"] = death.suspect.name
        native["suspect_object"] = death.suspect.library
        # Nothing but the C runtime, the interpreter and ctypes on the native stack: the fault
        # is theirs to show, not to blame (strlen faults, the caller passed the bad pointer).
        lib = Path(death.suspect.library or "").name
        native["runtime_only"] = bool(lib) and bool(RUNTIME_OBJECT.match(lib))
    if death.core is not None:
        native["core"] = death.core
    if death.stack_s is not None:
        native["stack_s"] = death.stack_s
    if death.problems:
        native["problems"] = death.problems
    incident.extra["native"] = native
    source = f"{STACKS_DIR}/{death.pid}.native.json"
    if where:
        incident.evidence.insert(
            0, Evidence(source=f"{source} ({death.method})", excerpt=f"faulting frame: {where}")
        )
    for line in death.kernel_lines[:3]:
        incident.evidence.append(Evidence(source="kernel log", excerpt=line[:1000]))
    if death.last_words:
        incident.evidence.insert(
            0,
            Evidence(
                source="output.log (printed before the death)",
                excerpt="\n".join(death.last_words)[:2000],
            ),
        )


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _kernel_frame(line: str) -> Frame | None:
    """The faulting instruction as a frame: its offset in the file (kernels since 6.x print
    it), else its address (an older kernel prints only where the file was mapped)."""
    fault = parse_fault_line(line)
    if fault is None or fault.library is None:
        return None
    name = f"+0x{fault.offset:x}" if fault.offset is not None else f"0x{fault.ip:x}"
    return Frame(name=name, native=True, library=fault.library)


def _library_text(library: str, libraries: dict[str, Any]) -> str:
    """``/path/libfoo.so (foo 1.2.3)``, or the path alone when no package owns it."""
    owner = Owner.from_dict(libraries.get(library), library)
    return library if owner is None else str(owner)


def last_words(output: Path, offset: int, *, plain: bool = False) -> list[str]:
    """What a dying native library printed just before ``offset`` of the run's output."""
    try:
        with open(output, "rb") as fh:
            start = max(0, offset - _OUTPUT_WINDOW)
            fh.seek(start)
            text = fh.read(offset - start).decode("utf-8", "replace")
    except OSError:
        return []
    lines = text.splitlines()
    if start > 0 and lines:
        lines = lines[1:]  # cut mid-line
    return words_in(lines, plain=plain)


def words_in(lines: list[str], *, plain: bool = False) -> list[str]:
    """The dying words among ``lines`` (the log scanner's rules: panics, terminate, assertions);
    with ``plain``, an abort()'s own message, i.e. the last lines that are not the test
    runner's."""
    # A progress line can be thousands of characters: only its start can be a message.
    lines = [ln[:_MAX_LINE] for ln in lines]
    found = [ln.rstrip() for ln in lines if is_dying_word(ln)]
    if found:
        return found[-5:]
    if not plain:
        return []
    # An abort() after a plain message: the last lines that are not the test runner's.
    kept = [ln.rstrip() for ln in lines[-20:] if not _RUNNER.search(ln)]
    return kept[-3:]


def parse_faulthandler_c_stack(text: str) -> list[Frame]:
    """Python >= 3.14's ``Current thread's C stack trace`` lines, innermost first."""
    frames: list[Frame] = []
    inside = False
    for line in text.splitlines():
        if "C stack trace" in line:
            inside = True
            frames = []
            continue
        if not inside:
            continue
        m = _FAULTHANDLER_C.match(line)
        if m is None:
            if frames:
                break
            continue
        library = m.group(1).rsplit("/", 1)[-1]
        symbol = m.group(2) or m.group(3)
        frames.append(Frame(name=symbol.split("+", 1)[0] or symbol, native=True, library=library))
    return frames
