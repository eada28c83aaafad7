"""Memory evidence for a supervised run: a cgroup around it, the sampler, the kernel's OOM lines.

Each piece is best-effort: one that cannot run (no cgroup rights, no readable kernel log)
records why in the journal and the others go on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.bundle import SYSTEM_DIR, open_append, write_json_atomic
from forensics.collect.cgroups import RunCgroup, cgroup_chain
from forensics.collect.kernlog import KernelLog
from forensics.kernel_lines import KernelLine, oom_report_lines, parse_oom
from forensics.supervise.sampler import MemorySampler

if TYPE_CHECKING:
    from forensics.supervise.supervisor import Supervisor

KERNEL_POLL_S = 1.0
# The kernel prints its OOM report a moment after the kill; wait this long for it at the end.
KERNEL_SETTLE_S = 0.3


def _chain_now() -> list[dict[str, Any]]:
    """The supervisor's memory cgroup and its limiting ancestors, as JSON-ready records."""
    try:
        return [m.to_dict() for m in cgroup_chain()]
    except OSError:
        return []


class MemoryWatch:
    def __init__(self, supervisor: Supervisor, interval: float = 0.5) -> None:
        self.sup = supervisor
        self.interval = interval
        self.cgroup: RunCgroup | None = None
        self.kernel: KernelLog | None = None
        self.sampler: MemorySampler | None = None
        self.kernel_lines: list[KernelLine] = []
        self._next_kernel = 0.0
        self._chain: list[dict[str, Any]] = []
        self._surrounding_start: list[dict[str, Any]] = []

    # Called before the command starts: the cgroup must exist for the child to join it.
    def prepare(self) -> None:
        made = RunCgroup.create_or_reason(self.sup.run_id)
        if isinstance(made, RunCgroup):
            self.cgroup = made
            self.sup.event(
                "collector", name="cgroup", ok=True, path=str(made.dir), version=made.info.version
            )
        else:
            # Without a run cgroup the surrounding one still counts OOM kills (memory.events
            # oom_kill on v2, memory.oom_control on v1) and is readable by any user.
            self._surrounding_start = _chain_now()
            if self._surrounding_start:
                here = self._surrounding_start[0]
                made += (
                    f"; OOM evidence falls back to the oom_kill counter and limits of the "
                    f"surrounding cgroup {here['path']} (v{here['version']})"
                )
            self.sup.event("collector", name="cgroup", ok=False, reason=made)
        log = KernelLog.open_or_reason()
        if isinstance(log, KernelLog):
            self.kernel = log
            self.sup.event("collector", name="kernel-log", ok=True, source=log.source)
        else:
            self.sup.event("collector", name="kernel-log", ok=False, reason=log)

    def started(self, child_pid: int) -> None:
        pids = self.cgroup.pids if self.cgroup is not None else None
        self.sampler = MemorySampler(
            child_pid, interval=self.interval, writer=self.sup.events, pids=pids
        )
        self.sampler.start()

    def tick(self, sup: Supervisor) -> None:
        now = time.monotonic()
        if self.kernel is not None and now >= self._next_kernel:
            self._next_kernel = now + KERNEL_POLL_S
            self._read_kernel()
        if self.cgroup is not None and now >= self._next_kernel - KERNEL_POLL_S / 2:
            # The chain is read while processes are alive: it needs a pid in the cgroup.
            self._snapshot_chain()

    def _snapshot_chain(self) -> None:
        assert self.cgroup is not None
        pids = self.cgroup.pids()
        if pids:
            try:
                self._chain = [m.to_dict() for m in cgroup_chain(pids[0])]
            except OSError:
                pass

    def _read_kernel(self) -> None:
        assert self.kernel is not None
        try:
            self.kernel_lines.extend(oom_report_lines(self.kernel.read_new()))
        except OSError as exc:
            self.sup.event("collector", name="kernel-log", ok=False, reason=str(exc))
            self.kernel = None

    def finish(self, sup: Supervisor) -> None:
        system = sup.bundle / SYSTEM_DIR
        if self.sampler is not None:
            self.sampler.stop()
            write_json_atomic(system / "memory.json", self.sampler.to_dict())
        if self.cgroup is not None:
            run = self.cgroup.read().to_dict()
            write_json_atomic(system / "cgroup.json", {"run": run, "chain": self._chain})
        elif self._surrounding_start:
            surrounding = {"start": self._surrounding_start, "end": _chain_now()}
            write_json_atomic(system / "cgroup.json", {"run": None, "surrounding": surrounding})
        if self.kernel is not None:
            if sup.saw_sigkill:
                time.sleep(KERNEL_SETTLE_S)
            self._read_kernel()
            self._write_kernel(system)
            self.kernel.close()

    def _write_kernel(self, system: Path) -> None:
        if not self.kernel_lines:
            return
        fd = open_append(system / "kernel.log")
        try:
            os.write(fd, "".join(line.format() + "\n" for line in self.kernel_lines).encode())
        finally:
            os.close(fd)
        known = set(self.sup.procs)
        marker = f"forensics-{self.sup.run_id}"
        kills = []
        for kill in parse_oom(self.kernel_lines):
            record = kill.to_dict()
            record["ours"] = kill.pid in known or marker in (kill.task_memcg or "")
            record["line"] = next((ln for ln in kill.lines if "Killed process" in ln), "")
            kills.append(record)
        write_json_atomic(system / "oom.json", {"kills": kills})

    def cleanup(self) -> None:
        """After the survivors are reaped: empty and remove the run's cgroup."""
        if self.cgroup is None:
            return
        self.cgroup.kill_all(timeout=2.0)
        reason = self.cgroup.remove_all()
        if reason:
            self.sup.event("collector", name="cgroup-remove", ok=False, reason=reason)
