"""Cores of dying processes: where the kernel puts them, which one is whose, what is in them.

The kernel writes a core where ``/proc/sys/kernel/core_pattern`` says: a plain file (relative
to the dying process's cwd, or absolute), or a pipe to a handler such as systemd-coredump or
apport.  A core is matched to its process by the pid in its first ``NT_PRSTATUS`` note, read by
pystack (Python and native frames of every thread) or, without it, by gdb.  Facts only.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CORE_PATTERN = Path("/proc/sys/kernel/core_pattern")
CORE_USES_PID = Path("/proc/sys/kernel/core_uses_pid")
# A Python worker's core is tens to hundreds of MB.  The kernel writes memory in address order
# and the stacks come last, so a core cut at the limit has lost them: the cap is a guard for
# the disk, set well above a usual worker.
DEFAULT_CORE_CAP = 2 * 1024 * 1024 * 1024
READ_TIMEOUT_S = 60.0

_NT_PRSTATUS = 1
_NT_FILE = 0x46494C45
_PT_NOTE = 4


@dataclass(frozen=True)
class CorePattern:
    kind: str  # "file" | "systemd-coredump" | "apport" | "pipe" | "none"
    pattern: str
    uses_pid: bool = False

    @property
    def collectable(self) -> bool:
        return self.kind in ("file", "systemd-coredump", "apport")

    def candidates(self, pid: int, cwd: str | None) -> list[Path]:
        """Paths where a plain-file pattern puts the core of ``pid`` (globs expanded)."""
        if self.kind != "file":
            return []
        text = self.pattern
        if not os.path.isabs(text):
            if cwd is None:
                return []
            text = os.path.join(cwd, text)
        has_pid = "%p" in text or "%P" in text
        # Every specifier but the pid becomes a wildcard; the ELF note confirms the owner.
        glob = re.sub(r"%[pP]", str(pid), text.replace("%%", "\0"))
        glob = re.sub(r"%.", "*", glob).replace("\0", "%")
        if self.uses_pid and not has_pid:
            glob += f".{pid}"
        directory, _, name = glob.rpartition("/")
        try:
            return sorted(Path(directory or "/").glob(name))
        except (OSError, ValueError):
            return []


def read_core_pattern() -> CorePattern:
    try:
        pattern = CORE_PATTERN.read_text().strip()
    except OSError:
        return CorePattern("none", "")
    try:
        uses_pid = CORE_USES_PID.read_text().strip() == "1"
    except OSError:
        uses_pid = False
    if not pattern:
        return CorePattern("none", pattern)
    if pattern.startswith("|"):
        if "systemd-coredump" in pattern:
            return CorePattern("systemd-coredump", pattern)
        if "apport" in pattern:
            return CorePattern("apport", pattern)
        return CorePattern("pipe", pattern)
    return CorePattern("file", pattern, uses_pid)


@dataclass
class CoreNotes:
    pid: int | None = None
    signal: int | None = None
    # Mapped files (NT_FILE): basename -> full path, for the frames' shared objects.
    files: dict[str, str] = field(default_factory=dict)


def read_core_notes(path: Path, limit: int = 8 * 1024 * 1024) -> CoreNotes | None:
    """The crashing thread's pid and signal and the mapped files, from an ELF64 core's notes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return None
            if struct.unpack_from("<H", head, 16)[0] != 4:  # ET_CORE
                return None
            phoff, phentsize, phnum = (
                struct.unpack_from("<Q", head, 32)[0],
                struct.unpack_from("<H", head, 54)[0],
                struct.unpack_from("<H", head, 56)[0],
            )
            fh.seek(phoff)
            table = fh.read(phentsize * phnum)
            notes = CoreNotes()
            for i in range(phnum):
                p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
                    "<IIQQQQ", table, i * phentsize
                )
                if p_type != _PT_NOTE:
                    continue
                fh.seek(p_offset)
                _parse_notes(fh.read(min(p_filesz, limit)), notes)
            return notes
    except (OSError, struct.error):
        return None


def _parse_notes(data: bytes, notes: CoreNotes) -> None:
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        pos += 12 + ((namesz + 3) & ~3)
        desc = data[pos : pos + descsz]
        pos += (descsz + 3) & ~3
        if ntype == _NT_PRSTATUS and notes.pid is None and len(desc) >= 36:
            # struct elf_prstatus: siginfo (12), pr_cursig (2), pad, sigpend, sighold, pr_pid.
            notes.signal = struct.unpack_from("<H", desc, 12)[0]
            notes.pid = struct.unpack_from("<i", desc, 32)[0]
        elif ntype == _NT_FILE and len(desc) >= 16:
            count = struct.unpack_from("<Q", desc, 0)[0]
            names = desc[16 + count * 24 :].split(b"\0")
            for raw in names[:count]:
                name = raw.decode("utf-8", "replace")
                notes.files.setdefault(os.path.basename(name), name)


def find_core(
    pattern: CorePattern, pid: int, cwds: list[str], since: float
) -> tuple[Path, CoreNotes] | None:
    """The plain-file core ``pid`` left, written at or after ``since`` (epoch seconds)."""
    seen: set[Path] = set()
    for cwd in cwds:
        for path in pattern.candidates(pid, cwd):
            if path in seen:
                continue
            seen.add(path)
            try:
                st = path.lstat()
            except OSError:
                continue
            if not path.is_file() or path.is_symlink() or st.st_mtime < since - 1.0:
                continue
            notes = read_core_notes(path)
            if notes is not None and notes.pid == pid:
                return path, notes
    return None


def coredumpctl_core(pid: int, destination: Path) -> Path | None:
    """systemd-coredump's core of ``pid``, exported to ``destination``."""
    tool = shutil.which("coredumpctl")
    if tool is None:
        return None
    for _ in range(10):  # the handler is still writing it for a moment after the exit
        try:
            done = subprocess.run(
                [tool, "dump", str(pid), "--output", str(destination), "--no-pager"],
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0 and destination.is_file():
            return destination
        time.sleep(0.3)
    return None


def apport_core(pid: int, executable: str | None, destination: Path) -> Path | None:
    """apport's crash report of ``pid`` (``/var/crash/*.crash``), its core unpacked."""
    tool = shutil.which("apport-unpack")
    crash_dir = Path("/var/crash")
    if tool is None or not crash_dir.is_dir() or executable is None:
        return None
    name = executable.replace("/", "_")
    for report in crash_dir.glob(f"{name}.*.crash"):
        try:
            text = report.read_text(errors="replace")[:100000]
        except OSError:
            continue
        if "ProcStatus:" in text and re.search(rf"^\s*Pid:\s*{pid}$", text, re.M):
            out = destination.with_suffix(".apport")
            subprocess.run([tool, str(report), str(out)], capture_output=True, timeout=60)
            core = out / "CoreDump"
            if core.is_file():
                return core
    return None


@dataclass
class NativeFrame:
    name: str
    file: str | None
    line: int | None
    native: bool
    library: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class NativeThread:
    tid: int | None
    name: str | None
    # Innermost first, as every stack in the triage model.
    frames: list[NativeFrame] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"tid": self.tid, "name": self.name, "frames": [f.to_dict() for f in self.frames]}


_PYSTACK_THREAD = re.compile(r"^Traceback for thread (\d+)(?: \[([^\]]*)\])?")
_PYSTACK_FRAME = re.compile(
    r'^\s+\((C|Python)\) File "([^"]*)", line (\d+), in (.+?)(?: \(inlined\))?(?: \(([^()]+)\))?$'
)


def parse_pystack(text: str) -> list[NativeThread]:
    """``pystack core --native-all`` text -> threads (it prints most recent call last)."""
    threads: list[NativeThread] = []
    current: NativeThread | None = None
    for line in text.splitlines():
        head = _PYSTACK_THREAD.match(line)
        if head:
            current = NativeThread(int(head.group(1)), head.group(2) or None)
            threads.append(current)
            continue
        m = _PYSTACK_FRAME.match(line)
        if m is None or current is None:
            continue
        native = m.group(1) == "C"
        file = None if m.group(2) in ("???", "") else m.group(2)
        current.frames.append(
            NativeFrame(
                name=m.group(4).strip(),
                file=file,
                line=int(m.group(3)) or None,
                native=native,
                library=m.group(5) if native else None,
            )
        )
    for thread in threads:
        thread.frames.reverse()
    return threads


_GDB_THREAD = re.compile(r"^Thread \d+ \(.*?(?:LWP|process) (\d+)\)")
_GDB_FRAME = re.compile(
    r"^#\d+\s+(?:0x[0-9a-f]+ in )?(\S+)\s*\(.*?\)(?: at (\S+):(\d+))?(?: from (\S+))?\s*$"
)


def parse_gdb(text: str) -> list[NativeThread]:
    """``gdb -batch -ex 'thread apply all bt'`` text -> threads (gdb prints innermost first)."""
    threads: list[NativeThread] = []
    current: NativeThread | None = None
    for line in text.splitlines():
        head = _GDB_THREAD.match(line)
        if head:
            current = NativeThread(int(head.group(1)), None)
            threads.append(current)
            continue
        m = _GDB_FRAME.match(line)
        if m is None:
            continue
        if current is None:
            current = NativeThread(None, None)
            threads.append(current)
        lib = m.group(4)
        current.frames.append(
            NativeFrame(
                name=m.group(1),
                file=m.group(2),
                line=int(m.group(3)) if m.group(3) else None,
                native=True,
                library=os.path.basename(lib) if lib else None,
            )
        )
    return threads


@dataclass
class CoreStacks:
    method: str  # "pystack" | "gdb"
    threads: list[NativeThread]
    seconds: float
    error: str | None = None


def read_core(core: Path, executable: str | None) -> CoreStacks | str:
    """Every thread's frames from a core; pystack first, gdb second; or why neither worked."""
    problems = []
    pystack = os.environ.get("FORENSICS_PYSTACK") or _beside_python("pystack")
    if pystack:
        started = time.monotonic()
        argv = [pystack, "core", "--native-all", "--no-color", str(core)]
        if executable:
            argv.append(executable)
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=READ_TIMEOUT_S, check=False
            )
            threads = parse_pystack(done.stdout)
            if _named_frames(threads):
                return CoreStacks("pystack", threads, time.monotonic() - started)
            problems.append(f"pystack: {(done.stderr or done.stdout).strip()[-300:]}")
        except (OSError, subprocess.SubprocessError) as exc:
            problems.append(f"pystack: {exc}")
    else:
        problems.append("pystack is not installed (pip install pystack)")
    gdb = shutil.which("gdb")
    if gdb and executable:
        started = time.monotonic()
        try:
            done = subprocess.run(
                [gdb, "-batch", "-nx", "-ex", "thread apply all bt", executable, str(core)],
                capture_output=True,
                text=True,
                timeout=READ_TIMEOUT_S,
                check=False,
            )
            threads = parse_gdb(done.stdout)
            if _named_frames(threads):
                return CoreStacks("gdb", threads, time.monotonic() - started)
            problems.append("gdb: no frames")
        except (OSError, subprocess.SubprocessError) as exc:
            problems.append(f"gdb: {exc}")
    elif not gdb:
        problems.append("gdb is not installed")
    return "; ".join(problems)


def _named_frames(threads: list[NativeThread]) -> bool:
    """Whether the reader named anything (a core cut before its stacks gives only ``???``)."""
    return any(f.name != "???" for t in threads for f in t.frames)


def _beside_python(name: str) -> str | None:
    """A console script of this interpreter's environment, else one on PATH."""
    import sys

    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)
