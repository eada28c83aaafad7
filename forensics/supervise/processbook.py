"""Process bookkeeping: every process of the run as it starts (the kernel's connector, a
scan of the tree), its exit status as it is reaped, and the survivors at the end."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import psutil

from forensics.collect.proctree import children_of, descendants, state_and_name
from forensics.supervise.procevents import ProcEvent
from forensics.supervise.run_state import RunState, _Proc
from forensics.supervise.stallwatch import end_processes


def _epoch(event: ProcEvent) -> float | None:
    """The kernel's time of a process event as epoch seconds (the journal's own clock)."""
    if not event.timestamp_ns:
        return None
    return round(time.time() - (time.monotonic_ns() - event.timestamp_ns) / 1e9, 6)


def signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"SIG{number}"


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


class ProcessBook(RunState):
    """Every process of the run, from start to exit."""

    # --- process tree ------------------------------------------------------------------------

    def _note_process(
        self, pid: int, ppid: int | None, argv: list[str], source: str, at: float | None = None
    ) -> None:
        with self._procs_lock:
            if pid in self.procs:
                return
            self.procs[pid] = _Proc(pid, ppid, argv)
        fields: dict[str, Any] = {"at": at} if at is not None else {}
        self.event(
            "proc-start", pid=pid, ppid=ppid, argv=self.redactor.argv(argv), source=source, **fields
        )

    def _on_proc_event(self, event: ProcEvent) -> None:
        if event.kind in ("fork", "exec"):
            argv = _cmdline(event.pid)
            if event.kind == "exec":
                with self._procs_lock:
                    known = self.procs.get(event.pid)
                if known is not None:
                    known.argv = argv
                    self.event("proc-exec", pid=event.pid, argv=self.redactor.argv(argv))
                    return
            self._note_process(event.pid, event.ppid, argv, "connector", _epoch(event))
            return
        self.event(
            "proc-exit",
            pid=event.pid,
            exit_code=event.exit_code,
            signal=signal_name(event.signal),
            core_dumped=event.core_dumped,
            source="connector",
            at=_epoch(event),
        )
        if event.signal == signal.SIGKILL:
            self.saw_sigkill = True
        self._exited(event.pid, event.signal, event.core_dumped)
        if self.child is not None and event.pid == self.child.pid:
            if event.signal is not None:
                self._connector_child_status = -event.signal
            else:
                self._connector_child_status = event.exit_code
            self._command_exit_seen.set()

    def run_pids(self) -> list[int]:
        """Live processes of the run: the command, its descendants and adopted orphans."""
        excluded = {os.getpid()}
        if self.watchdog is not None:
            excluded.add(self.watchdog.pid)
        cgroup = self.memory.cgroup if self.memory is not None else None
        try:
            # The cgroup also holds processes that double-forked out of our tree.
            candidates = cgroup.pids() if cgroup is not None else descendants([os.getpid()])
        except OSError:
            candidates = descendants([os.getpid()])
        found: list[int] = []
        for pid in candidates:
            facts = state_and_name(pid) if pid not in excluded else None
            # Zombies are dead already; py-spy is one of our collectors, not the run.
            if facts is not None and facts[0] != "Z" and facts[1] != "py-spy":
                found.append(pid)
        return found

    def _scan_tree(self) -> None:
        for pid in self.run_pids():
            if pid in self.procs:
                continue
            try:
                proc = psutil.Process(pid)
                self._note_process(pid, proc.ppid(), proc.cmdline(), "tree")
            except psutil.Error:
                continue

    def _reap(self) -> None:
        """Collect exit statuses of our own children: the command and adopted orphans.

        Not ``waitpid(-1)``: py-spy runs as our child too, and its status belongs to the
        collector thread that waits for it.
        """
        assert self.child is not None
        for pid in children_of(os.getpid()):
            facts = state_and_name(pid)
            if facts is None or facts[0] != "Z" or facts[1] == "py-spy":
                continue
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped == 0:
                continue
            code = os.waitstatus_to_exitcode(status)
            if self.watchdog is not None and pid == self.watchdog.pid:
                self.watchdog.returncode = code
                continue
            self._record_exit(pid, code, "reaped")

    def _record_exit(self, pid: int, code: int, source: str) -> None:
        assert self.child is not None
        if code == -signal.SIGKILL:
            self.saw_sigkill = True
        if pid == self.child.pid:
            self._child_status = code
            self.child.returncode = code
        if self.listener is None:
            self._exited(pid, -code if code < 0 else None, None)
        if self.listener is None or pid == self.child.pid:
            self.event(
                "proc-exit",
                pid=pid,
                exit_code=code if code >= 0 else None,
                signal=signal_name(-code) if code < 0 else None,
                source=source,
            )

    def _reap_survivors(self) -> None:
        """Processes of the run still alive once the command has exited: report, then end them."""
        survivors = self.run_pids()
        if not survivors:
            return
        for pid in survivors:
            self.event("survivor", pid=pid, argv=self.redactor.argv(_cmdline(pid)))
        end_processes(self, survivors, reason="survivor", grace=1.0)
        self._reap()
