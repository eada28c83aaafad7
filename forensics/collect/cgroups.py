"""Memory cgroup evidence, cgroup v1 and v2: where a process is, its limit, usage, OOM counters.

Every read is tolerant: a file the kernel does not provide (older kernel, other version, no
permission) becomes ``None``, never an exception, because collectors are best-effort.

Detection: ``/proc/PID/cgroup`` names the process's cgroup per hierarchy.  A v1 line whose
controller list holds ``memory`` wins when a v1 memory hierarchy is mounted, because a
controller bound to v1 cannot be enabled in v2 at the same time.  Otherwise the ``0::PATH``
line is used with the cgroup2 mount, provided that hierarchy offers the memory controller.
The directory is the mount point joined with the path relative to the mount's root, both from
``/proc/self/mountinfo``.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PROC = Path("/proc")

# v1 reports "no limit" as PAGE_COUNTER_MAX * PAGE_SIZE (9223372036854771712 on x86-64), a
# value that differs by architecture; anything this large cannot be a real limit.
_V1_UNLIMITED = 1 << 60

# memory.stat keys worth keeping: what holds the memory (anon vs page cache) and, for v1, the
# limit that applies through the ancestors.  The full file is ~60 lines per read.
_STAT_KEYS = (
    "anon",
    "file",
    "shmem",
    "rss",
    "cache",
    "swap",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
)


@dataclass(frozen=True)
class Mount:
    root: str  # the path inside the hierarchy that is mounted (usually "/")
    mountpoint: Path
    fstype: str  # "cgroup" or "cgroup2"
    options: frozenset[str]  # super options; for v1 they name the controllers


@dataclass(frozen=True)
class CgroupInfo:
    version: int  # 1 or 2
    path: str  # the cgroup as /proc/PID/cgroup names it, e.g. "/user.slice/ci.scope"
    dir: Path  # the directory holding its control files


@dataclass
class CgroupMemory:
    version: int
    path: str
    dir: str
    limit_bytes: int | None = None  # None: unlimited (v1 huge value, v2 "max") or unreadable
    usage_bytes: int | None = None
    peak_bytes: int | None = None  # v1 memory.max_usage_in_bytes, v2 memory.peak (>= 5.19)
    oom_kill: int | None = None  # processes the OOM killer killed in this cgroup
    oom_events: int | None = None  # v2 "oom": times the cgroup hit OOM (v1 does not count)
    under_oom: bool | None = None  # v1 only: OOM in progress right now
    limit_hits: int | None = None  # v1 memory.failcnt, v2 memory.events "max"
    high_events: int | None = None  # v2 memory.events "high"
    swap_limit_bytes: int | None = None  # v2 memory.swap.max
    swap_usage_bytes: int | None = None  # v2 memory.swap.current
    memsw_limit_bytes: int | None = None  # v1 memory.memsw.limit_in_bytes (memory + swap)
    events: dict[str, int] = field(default_factory=dict)  # raw counters as the kernel wrote them
    stat: dict[str, int] = field(default_factory=dict)  # a subset of memory.stat
    time: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- parsing ---------------------------------------------------------------------------------


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field_: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field_)


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3 or rf[0] not in ("cgroup", "cgroup2"):
            continue
        opts = frozenset(rf[2].split(",")) | frozenset(lf[5].split(",") if len(lf) > 5 else ())
        mounts.append(Mount(_unescape(lf[3]), Path(_unescape(lf[4])), rf[0], opts))
    return mounts


def parse_proc_cgroup(text: str) -> tuple[dict[str, str], str | None]:
    """Return ({v1 controller: path}, v2 path) from the text of /proc/PID/cgroup."""
    v1: dict[str, str] = {}
    v2: str | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hid, controllers, path = parts
        if hid == "0" and controllers == "":
            v2 = path
        else:
            for c in controllers.split(","):
                v1[c] = path
    return v1, v2


def _join(mount: Mount, path: str) -> Path | None:
    root = mount.root.rstrip("/")
    if root and not (path == root or path.startswith(root + "/")):
        # The process's cgroup lies outside what this mount shows (another namespace).
        return None
    rel = path[len(root) :].lstrip("/")
    return mount.mountpoint / rel if rel else mount.mountpoint


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _v2_has_memory(mount: Mount) -> bool:
    text = _read(mount.mountpoint / "cgroup.controllers")
    return text is not None and "memory" in text.split()


def current_cgroup(pid: int | None = None) -> CgroupInfo | None:
    """The memory cgroup of *pid* (default: this process), or None when there is none to read."""
    cg = _read(PROC / str(pid if pid is not None else "self") / "cgroup")
    mi = _read(PROC / "self" / "mountinfo")
    if cg is None or mi is None:
        return None
    return detect_cgroup(cg, mi)


def detect_cgroup(proc_cgroup: str, mountinfo: str) -> CgroupInfo | None:
    """Pick the memory cgroup from the texts of /proc/PID/cgroup and /proc/self/mountinfo."""
    v1, v2 = parse_proc_cgroup(proc_cgroup)
    mounts = parse_mountinfo(mountinfo)
    if "memory" in v1:
        for m in mounts:
            if m.fstype == "cgroup" and "memory" in m.options:
                d = _join(m, v1["memory"])
                if d is not None:
                    return CgroupInfo(1, v1["memory"], d)
    if v2 is not None:
        for m in mounts:
            if m.fstype == "cgroup2" and _v2_has_memory(m):
                d = _join(m, v2)
                if d is not None:
                    return CgroupInfo(2, v2, d)
    return None


def _int(path: Path) -> int | None:
    text = _read(path)
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _v1_limit(path: Path) -> int | None:
    value = _int(path)
    return None if value is None or value >= _V1_UNLIMITED else value


def _keyed(path: Path) -> dict[str, int]:
    """Parse "key value" lines (memory.events, memory.stat, memory.oom_control)."""
    text = _read(path)
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def read_memory_from_dir(path: Path, version: int, cgroup_path: str | None = None) -> CgroupMemory:
    """Read the memory files of the cgroup directory *path* as cgroup *version* writes them."""
    stat = _keyed(path / "memory.stat")
    mem = CgroupMemory(
        version=version,
        path=cgroup_path if cgroup_path is not None else str(path),
        dir=str(path),
        stat={k: stat[k] for k in _STAT_KEYS if k in stat},
        time=time.time(),
    )
    if version == 1:
        mem.limit_bytes = _v1_limit(path / "memory.limit_in_bytes")
        mem.usage_bytes = _int(path / "memory.usage_in_bytes")
        mem.peak_bytes = _int(path / "memory.max_usage_in_bytes")
        mem.limit_hits = _int(path / "memory.failcnt")
        mem.memsw_limit_bytes = _v1_limit(path / "memory.memsw.limit_in_bytes")
        mem.events = _keyed(path / "memory.oom_control")
        mem.oom_kill = mem.events.get("oom_kill")
        if "under_oom" in mem.events:
            mem.under_oom = bool(mem.events["under_oom"])
        hier = mem.stat.get("hierarchical_memory_limit")
        if mem.limit_bytes is None and hier is not None and hier < _V1_UNLIMITED:
            # An ancestor's limit applies; report it so a child cgroup still shows the cap.
            mem.limit_bytes = hier
    else:
        mem.limit_bytes = _int(path / "memory.max")
        mem.usage_bytes = _int(path / "memory.current")
        mem.peak_bytes = _int(path / "memory.peak")
        mem.swap_limit_bytes = _int(path / "memory.swap.max")
        mem.swap_usage_bytes = _int(path / "memory.swap.current")
        mem.events = _keyed(path / "memory.events")
        mem.oom_kill = mem.events.get("oom_kill")
        mem.oom_events = mem.events.get("oom")
        mem.limit_hits = mem.events.get("max")
        mem.high_events = mem.events.get("high")
    return mem


def read_memory(info: CgroupInfo) -> CgroupMemory:
    return read_memory_from_dir(info.dir, info.version, info.path)


def _own_limit(mem: CgroupMemory) -> int | None:
    # For v1, read_memory_from_dir falls back to the inherited limit; the chain wants the
    # cgroups that set one themselves.
    if mem.version == 1:
        return _v1_limit(Path(mem.dir) / "memory.limit_in_bytes")
    return mem.limit_bytes


def cgroup_chain(pid: int | None = None) -> list[CgroupMemory]:
    """The memory cgroup of *pid* first, then each ancestor that sets a limit, nearest first.

    The OOM killer acts at whichever level's limit was hit; its counters are on that level (v1
    counts a kill only in the victim's own cgroup, v2 counts it in every ancestor too).
    """
    info = current_cgroup(pid)
    if info is None:
        return []
    chain = [read_memory(info)]
    path, d = info.path, info.dir
    while path not in ("/", ""):
        path = path.rsplit("/", 1)[0] or "/"
        d = d.parent
        if not (d / "cgroup.procs").exists():
            break  # above the mount's root
        mem = read_memory_from_dir(d, info.version, path)
        if _own_limit(mem) is not None:
            chain.append(mem)
    return chain


# --- a cgroup for the run --------------------------------------------------------------------


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode("ascii"))
    finally:
        os.close(fd)


def _pids(path: Path) -> list[int]:
    text = _read(path / "cgroup.procs")
    return [int(x) for x in (text or "").split() if x.isdigit()]


class RunCgroup:
    """A child memory cgroup holding the wrapped command and all of its descendants.

    Membership survives setsid() and double forks, so every process of the run can be counted
    and killed.  Created under the supervisor's own memory cgroup, so a limit the environment
    imposes above it still applies and its counters stay readable through :func:`cgroup_chain`.

    cgroup v2 allows controllers in a cgroup's ``subtree_control`` only while it holds no
    processes (the no-internal-processes rule), and the supervisor lives in that cgroup.  So
    when enabling the controller fails with EBUSY, the processes there (the supervisor, and in
    a delegated scope the shell that started it) move to a sibling leaf ``forensics-<id>-outer``
    first; :meth:`remove` puts them back.
    """

    def __init__(self, info: CgroupInfo, outer: Path | None = None, enabled: str | None = None):
        self.info = info
        self.outer = outer  # the leaf the parent's processes were moved to, if any
        self.enabled = enabled  # the controller we enabled in the parent's subtree_control

    @property
    def dir(self) -> Path:
        return self.info.dir

    @property
    def procs_path(self) -> Path:
        return self.info.dir / "cgroup.procs"

    @classmethod
    def create(cls, run_id: str, memory_limit: int | None = None) -> RunCgroup | None:
        made = cls.create_or_reason(run_id, memory_limit)
        return made if isinstance(made, RunCgroup) else None

    @classmethod
    def create_or_reason(cls, run_id: str, memory_limit: int | None = None) -> RunCgroup | str:
        """The new cgroup, or a one-line reason why none could be made (for the bundle)."""
        parent = current_cgroup()
        if parent is None:
            return "no memory cgroup controller is mounted (neither cgroup v1 nor v2)"
        return cls.create_in(parent, run_id, memory_limit)

    @classmethod
    def create_in(
        cls,
        parent: CgroupInfo,
        run_id: str,
        memory_limit: int | None = None,
        controller: str = "memory",
    ) -> RunCgroup | str:
        """``forensics-<run_id>`` under *parent*, with *controller* enabled for it on v2."""
        if not run_id or "/" in run_id or run_id in (".", ".."):
            return f"invalid run id for a cgroup name: {run_id!r}"
        name = f"forensics-{run_id}"
        outer: Path | None = None
        enabled: str | None = None
        if parent.version == 2:
            made = _enable_v2_controller(parent.dir, controller, f"{name}-outer")
            if isinstance(made, str):
                return made
            outer, enabled = made
        child = CgroupInfo(parent.version, parent.path.rstrip("/") + "/" + name, parent.dir / name)
        run = cls(child, outer, enabled)
        try:
            child.dir.mkdir(mode=0o755)
        except OSError as exc:
            run._restore_parent()
            return f"cannot create cgroup {child.dir}: {exc.strerror}; {_delegation_fix(parent)}"
        if memory_limit is not None:
            limit_file = "memory.limit_in_bytes" if child.version == 1 else "memory.max"
            try:
                _write(child.dir / limit_file, str(int(memory_limit)))
            except OSError as exc:
                run.remove()
                return f"cannot set memory limit in {child.dir}: {exc.strerror}"
        return run

    def add_pid(self, pid: int) -> None:
        """Move *pid* into the cgroup; 0 means the calling process (usable in a preexec_fn)."""
        _write(self.procs_path, str(pid))

    def pids(self) -> list[int]:
        return _pids(self.dir)

    def read(self) -> CgroupMemory:
        return read_memory(self.info)

    def kill_all(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL every process in the cgroup until it is empty; return the pids signalled.

        cgroup.kill (v2, Linux >= 5.14) kills atomically.  Without it, a process can fork between
        reading cgroup.procs and the kill, so read and kill again until nothing is left.
        """
        seen: list[int] = []
        kill_file = self.dir / "cgroup.kill"
        deadline = time.monotonic() + timeout
        if self.info.version == 2 and kill_file.exists():
            seen = self.pids()
            try:
                _write(kill_file, "1")
            except OSError:
                pass
        while time.monotonic() < deadline:
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                except PermissionError:
                    continue
                if pid not in seen:
                    seen.append(pid)
            time.sleep(0.01)
        return seen

    def remove(self, timeout: float = 2.0) -> str | None:
        """Remove the (emptied) cgroup; return why not, or None when it is gone."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.dir)
                return None
            except FileNotFoundError:
                return None
            except OSError as exc:
                # EBUSY while exiting processes are still being uncharged: retry briefly.
                if exc.errno != errno.EBUSY or time.monotonic() >= deadline:
                    return f"cannot remove cgroup {self.dir}: {exc.strerror}"
            time.sleep(0.02)

    def remove_all(self, timeout: float = 2.0) -> str | None:
        """:meth:`remove`, then undo what creation did to the parent (v2 leaf move)."""
        reason = self.remove(timeout)
        if reason is None:
            reason = self._restore_parent()
        return reason

    def _restore_parent(self) -> str | None:
        """Disable the controller we enabled and move the processes back out of the leaf."""
        if self.outer is None and self.enabled is None:
            return None
        parent = self.dir.parent
        others = [
            d for d in _subdirs(parent) if d != self.outer and d.name.startswith("forensics-")
        ]
        if others:
            return None  # another run still uses the controller here: leave the parent as is
        try:
            if self.enabled is not None:
                _write(parent / "cgroup.subtree_control", f"-{self.enabled}")
            if self.outer is not None:
                _move_all(self.outer, parent)
                os.rmdir(self.outer)
        except OSError as exc:
            return f"cannot restore cgroup {parent} after the run: {exc.strerror}"
        finally:
            self.outer = self.enabled = None
        return None


def _subdirs(d: Path) -> list[Path]:
    try:
        return [p for p in d.iterdir() if p.is_dir()]
    except OSError:
        return []


def _move_all(src: Path, dest: Path) -> list[int]:
    """Move every process of *src* into *dest*; return the pids that could not be moved."""
    stuck = []
    for pid in _pids(src):
        try:
            _write(dest / "cgroup.procs", str(pid))
        except ProcessLookupError:
            continue  # exited meanwhile
        except OSError:
            stuck.append(pid)
    return stuck


def _delegation_fix(parent: CgroupInfo) -> str:
    if parent.version == 1:
        return "needs root, or a v1 memory cgroup made writable for this user"
    return (
        "needs root or a delegated cgroup: under systemd, run "
        "`systemd-run --user --scope -p Delegate=yes forensics wrap ...`"
    )


def _enable_v2_controller(
    d: Path, controller: str, leaf: str
) -> tuple[Path | None, str | None] | str:
    """Make *controller* available to children of *d*, moving its processes to the leaf
    *d*/*leaf* when the no-internal-processes rule requires it.

    Returns (the leaf or None, the controller we enabled or None), or a one-line reason.
    """
    if controller not in (_read(d / "cgroup.controllers") or "").split():
        return f"the {controller} controller is not available in cgroup v2 at {d}"
    if controller in (_read(d / "cgroup.subtree_control") or "").split():
        return None, None
    outer: Path | None = None
    for _attempt in range(5):
        try:
            _write(d / "cgroup.subtree_control", f"+{controller}")
            return outer, controller
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                reason = f"cannot enable the {controller} controller below {d}: {exc.strerror}"
                if exc.errno in (errno.EACCES, errno.EPERM):
                    reason += f"; {_delegation_fix(CgroupInfo(2, '', d))}"
                break
        # EBUSY: processes live in d (the supervisor among them).  Move them to a leaf; a
        # process forked meanwhile makes the next attempt move it too.
        if outer is None:
            outer = d / leaf
            try:
                outer.mkdir(mode=0o755)
            except OSError as exc:
                return (
                    f"cannot enable the {controller} controller below {d}: it holds processes "
                    f"(cgroup v2 no-internal-processes rule) and a leaf for them cannot be made: "
                    f"{exc.strerror}; {_delegation_fix(CgroupInfo(2, '', d))}"
                )
        stuck = _move_all(d, outer)
        if stuck:
            reason = (
                f"cannot enable the {controller} controller below {d}: it holds processes "
                f"(cgroup v2 no-internal-processes rule) that cannot be moved to a leaf: "
                f"pids {' '.join(map(str, stuck[:10]))}; run inside a delegated, empty cgroup"
            )
            break
    else:
        reason = f"cannot enable the {controller} controller below {d}: still busy"
    if outer is not None:
        _move_all(outer, d)
        try:
            os.rmdir(outer)
        except OSError:
            pass
    return reason
