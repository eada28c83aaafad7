"""The ``wrap`` side: run a command, watch every process it starts, keep evidence of each death.

The supervisor is the parent of the wrapped command and a child subreaper, so every orphaned
descendant is re-parented to it.  It writes the bundle's journal (``events.jsonl``), tees the
command's output, forwards and escalates signals, and at the end reaps what the run left behind.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import psutil

from forensics import __version__
from forensics.bundle import (
    BUNDLE_SCHEMA,
    EVENTS,
    MANIFEST,
    OUTPUT,
    OUTPUT_INDEX,
    JsonlWriter,
    open_append,
    write_json_atomic,
)
from forensics.collect.proctree import children_of, descendants, state_and_name
from forensics.collect.pyspy import configured_py_spy, ptrace_access
from forensics.redact import Redactor
from forensics.supervise import launch, owners
from forensics.supervise.deathwatch import DeathWatch
from forensics.supervise.memory import MemoryWatch
from forensics.supervise.procevents import ProcEvent, ProcEventListener
from forensics.supervise.signalwatch import SignalWatch
from forensics.supervise.stallwatch import StallWatch, end_processes, take_evidence

TICK_S = 0.1
TREE_SCAN_S = 0.5
# After the first forwarded SIGINT/SIGTERM: how long the command gets to exit by itself.
DEFAULT_INTERRUPT_GRACE_S = 10.0
TERM_GRACE_S = 5.0


# How often output.log's size is noted with the time (at most; only while output flows).
OUTPUT_INDEX_EVERY_S = 0.2


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


class CommandNotRunnable(Exception):
    def __init__(self, command: str, error: OSError, status: int) -> None:
        super().__init__(f"cannot run {command!r}: {error.strerror}")
        self.status = status


@dataclass
class WrapOptions:
    argv: list[str]
    bundle: Path
    hang_timeout: float | None = None
    timeout: float | None = None
    interrupt_grace: float = DEFAULT_INTERRUPT_GRACE_S
    foreground: bool = False
    keep_cores: bool = False


@dataclass
class _Proc:
    pid: int
    ppid: int | None
    argv: list[str]


class Supervisor:
    def __init__(self, options: WrapOptions) -> None:
        self.options = options
        self.bundle = options.bundle
        self.run_id = uuid.uuid4().hex[:16]
        self.events = JsonlWriter(self.bundle / EVENTS)
        self.redactor = Redactor.from_environ(os.environ)
        self.child: subprocess.Popen[bytes] | None = None
        self.watchdog: subprocess.Popen[bytes] | None = None
        self.listener: ProcEventListener | None = None
        self.procs: dict[int, _Proc] = {}
        self._procs_lock = threading.Lock()
        self._interrupts = 0
        self._escalate_at: float | None = None
        self._escalation_step = 0
        self._escalate_kill = False
        # Filled by the signal handler, journalled by the main loop.
        self._signals_received: list[int] = []
        self._signals_forwarded: list[int] = []
        self._early_signals: list[int] = []
        self._terminal_given = False
        self._connector_child_status: int | None = None
        self._escalate_reason = "interrupt"
        self.stallwatch: StallWatch | None = None
        self._child_status: int | None = None
        self._tee_threads: list[threading.Thread] = []
        self._output_fd: int | None = None
        self._output_index_fd: int | None = None
        self._output_indexed = 0.0
        self.start_time = time.time()
        self.ended_by: str | None = None
        self._on_tick: list[Callable[[Supervisor], None]] = []
        self._on_finish: list[Callable[[Supervisor], None]] = []
        # (pid, signal number or None, core dumped or None), from the thread that saw the exit.
        self._on_exit: list[Callable[[int, int | None, bool | None], None]] = []
        self.memory: MemoryWatch | None = None
        self.signals: SignalWatch | None = None
        self.deaths: DeathWatch | None = None
        # A SIGKILL death may be the OOM killer's: its kernel report is then worth waiting for.
        self.saw_sigkill = False
        self._command_exit_seen = threading.Event()

    # --- journal -----------------------------------------------------------------------------

    def event(self, kind: str, **fields: Any) -> None:
        self.events.write({"t": time.time(), "kind": kind, **fields})

    def add_tick(self, callback: Callable[[Supervisor], None]) -> None:
        self._on_tick.append(callback)

    def add_finish(self, callback: Callable[[Supervisor], None]) -> None:
        self._on_finish.append(callback)

    def add_exit(self, callback: Callable[[int, int | None, bool | None], None]) -> None:
        self._on_exit.append(callback)

    def _exited(self, pid: int, signum: int | None, core_dumped: bool | None) -> None:
        for callback in self._on_exit:
            try:
                callback(pid, signum, core_dumped)
            except Exception:  # a collector's bug must not lose the exit record
                pass

    def _manifest(self, **end: Any) -> dict[str, Any]:
        return {
            "schema": BUNDLE_SCHEMA,
            "run_id": self.run_id,
            "supervisor_pid": os.getpid(),
            "command": self.redactor.argv(self.options.argv),
            "cwd": os.getcwd(),
            "start": self.start_time,
            "end": end.get("end"),
            "exit_status": end.get("exit_status"),
            "ended_by": end.get("ended_by"),
            "options": {
                "hang_timeout": self.options.hang_timeout,
                "timeout": self.options.timeout,
                "interrupt_grace": self.options.interrupt_grace,
            },
            "host": _host_facts(),
            "tools": _tool_versions(),
            "environment": self.redactor.env(dict(os.environ)),
        }

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

    # --- output ------------------------------------------------------------------------------

    def _tee(self, source: IO[bytes], sink: IO[bytes]) -> None:
        fd = source.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            try:
                sink.write(chunk)
                sink.flush()
            except (OSError, ValueError):
                pass
            if self._output_fd is not None:
                try:
                    os.write(self._output_fd, chunk)
                    self._index_output()
                except OSError:
                    pass

    def _index_output(self) -> None:
        """Now and then, how far output.log had grown: a line in it can then be given a time
        (a fatal error a child printed to stderr is matched to the child that died then)."""
        now = time.time()
        if now - self._output_indexed < OUTPUT_INDEX_EVERY_S or self._output_fd is None:
            return
        self._output_indexed = now
        size = os.fstat(self._output_fd).st_size
        if self._output_index_fd is None:
            self._output_index_fd = open_append(self.bundle / OUTPUT_INDEX)
        os.write(self._output_index_fd, f'{{"t":{now:.3f},"offset":{size}}}\n'.encode())

    # --- signals -----------------------------------------------------------------------------

    def _forward(self, signum: int, frame: object) -> None:
        """Forward SIGINT/SIGTERM/SIGHUP to the command; a second Ctrl-C escalates at once.

        Runs between two bytecodes of the main thread, which may be inside a journal write:
        so only signals and flags here, and the main loop writes the journal.
        """
        self._signals_received.append(signum)
        if signum == signal.SIGINT:
            self._interrupts += 1
        if self.child is None:
            self._early_signals.append(signum)  # delivered as soon as the command runs
            return
        self._deliver(signum)

    def _deliver(self, signum: int) -> None:
        assert self.child is not None
        if self._interrupts >= 2:
            self.ended_by = "interrupt (twice)"
            self._escalate_at = time.monotonic()
            self._escalate_kill = True
            return
        try:
            os.killpg(self.child.pid, signum)
        except OSError:
            pass
        self._signals_forwarded.append(signum)
        if self._escalate_at is None:
            self._escalate_at = time.monotonic() + self.options.interrupt_grace
            self.ended_by = self.ended_by or f"{signal_name(signum)} from user"
            self._escalate_reason = "interrupt"

    def _journal_signals(self) -> None:
        while self._signals_received:
            self.event("signal-received", signal=signal_name(self._signals_received.pop(0)))
        while self._signals_forwarded:
            assert self.child is not None
            signum = self._signals_forwarded.pop(0)
            self.event("signal-sent", signal=signal_name(signum), pgid=self.child.pid)

    def _send_group(self, signum: int) -> None:
        assert self.child is not None
        try:
            os.killpg(self.child.pid, signum)
            self.event("signal-sent", signal=signal_name(signum), pgid=self.child.pid)
        except OSError as exc:
            self.event("signal-sent", signal=signal_name(signum), error=exc.strerror)

    def _escalate(self) -> None:
        """Evidence first, then SIGTERM the whole run, then SIGKILL, each after a grace period."""
        self._escalation_step += 1
        if self._escalation_step == 1:
            pids = self.run_pids()
            self.event(
                "unresponsive",
                reason=self._escalate_reason,
                grace_s=self.options.interrupt_grace
                if self._escalate_reason == "interrupt"
                else None,
                pids=pids,
            )
            # A second Ctrl-C wants the run gone now: take the cheaper stacks.
            take_evidence(
                self,
                pids,
                self._escalate_reason,
                native=not self._escalate_kill,
                timeout=5.0 if self._escalate_kill else 10.0,
            )
        if self._escalation_step == 1 and not self._escalate_kill:
            self.terminate_run(signal.SIGTERM)
        else:
            self.terminate_run(signal.SIGKILL)
        self._escalate_at = time.monotonic() + TERM_GRACE_S

    def terminate_run(self, signum: int) -> None:
        assert self.child is not None
        self._send_group(signum)
        for pid in self.run_pids():
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        opts = self.options
        self._output_fd = open_append(self.bundle / OUTPUT)
        write_json_atomic(self.bundle / MANIFEST, self._manifest())
        self.event("run-start", run_id=self.run_id, argv=self.redactor.argv(opts.argv))
        if not launch.become_subreaper():
            self.event("collector", name="subreaper", ok=False, reason="prctl refused")
        self.event("collector", **ptrace_access(configured_py_spy()))
        self._open_listener()
        self.memory = MemoryWatch(self)
        self.memory.prepare()
        self.signals = SignalWatch(self)
        self.signals.prepare()
        self.deaths = DeathWatch(self, keep_cores=opts.keep_cores)
        self.deaths.prepare()
        self.add_exit(self.deaths.on_exit)
        env = launch.child_environment(os.environ, self.bundle.resolve(), self.run_id)
        previous = {
            sig: signal.signal(sig, self._forward)
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        try:
            try:
                # The command runs in a background process group: reading the terminal would
                # stop it (SIGTTIN) forever.  Either it gets no stdin, or with --foreground the
                # terminal itself (and Ctrl-C goes to it directly, unseen by us).
                interactive = launch.terminal_in_foreground()
                cgroup = self.memory.cgroup
                self.child = launch.start_child(
                    opts.argv,
                    env,
                    str(cgroup.procs_path) if cgroup is not None else None,
                    core_limit=self.deaths.limit,
                    stdin_devnull=interactive and not opts.foreground,
                )
                if interactive and opts.foreground:
                    launch.give_terminal(self.child.pid)
                    self._terminal_given = True
                elif interactive:
                    self.event(
                        "stdin",
                        note="stdin is a terminal: the command gets /dev/null "
                        "(wrap --foreground lets it read the terminal)",
                    )
            except OSError as exc:
                # As a shell does: 127 when the command is not found, 126 when it cannot run.
                status = 127 if isinstance(exc, FileNotFoundError) else 126
                self._abandon_start(status, exc)
                raise CommandNotRunnable(opts.argv[0], exc, status) from exc
            if self.listener is not None:
                self.listener.track(self.child.pid)
            for signum in self._early_signals:
                self._deliver(signum)
            self._note_process(self.child.pid, os.getpid(), list(opts.argv), "launch")
            cgroup = self.memory.cgroup
            self.watchdog = launch.start_watchdog(
                self.run_id, self.child.pid, str(cgroup.procs_path) if cgroup else None
            )
            self.memory.started(self.child.pid)
            self.add_tick(self.memory.tick)
            self.add_finish(self.memory.finish)
            self.add_tick(self.deaths.tick)
            self.add_finish(self.deaths.finish)
            self.add_tick(self.signals.tick)
            self.add_finish(self.signals.finish)
            self.add_finish(owners.finish)
            if opts.hang_timeout:
                self.stallwatch = StallWatch(self, opts.hang_timeout)
                self.add_tick(self.stallwatch.tick)
            assert self.child.stdout is not None and self.child.stderr is not None
            for src, sink in ((self.child.stdout, sys.stdout), (self.child.stderr, sys.stderr)):
                thread = threading.Thread(
                    target=self._tee, args=(src, sink.buffer), daemon=True, name="forensics-tee"
                )
                thread.start()
                self._tee_threads.append(thread)
            status = self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._finish(status)
        return launch.exit_status(status)

    def _abandon_start(self, status: int, exc: OSError) -> None:
        """The command never started: release what was set up for it, keep the record."""
        self.event("run-end", exit_status=status, error=exc.strerror)
        if self.listener is not None:
            self.listener.stop()
        if self.memory is not None:
            self.memory.cleanup()
        if self.signals is not None:
            self.signals.abandon()
        if self.deaths is not None:
            self.deaths.finish(self)
        write_json_atomic(
            self.bundle / MANIFEST,
            self._manifest(end=time.time(), exit_status=status, ended_by="not started"),
        )
        self.events.close()

    def _open_listener(self) -> None:
        listener = ProcEventListener(self._on_proc_event)
        try:
            listener.open()
        except OSError as exc:
            self.event(
                "collector",
                name="proc-connector",
                ok=False,
                reason=f"{exc.strerror or exc}: exit signals of processes the command did not "
                "reap itself come from the agents and xdist instead (needs CAP_NET_ADMIN)",
            )
            return
        listener.start()
        self.listener = listener
        self.event("collector", name="proc-connector", ok=True)

    def _loop(self) -> int:
        assert self.child is not None
        deadline = time.monotonic() + self.options.timeout if self.options.timeout else None
        next_scan = 0.0
        while self._child_status is None:
            self._reap()
            if self._child_status is not None:
                break
            now = time.monotonic()
            if now >= next_scan:
                self._scan_tree()
                next_scan = now + TREE_SCAN_S
            self._journal_signals()
            for callback in self._on_tick:
                try:
                    callback(self)
                except Exception as exc:
                    # One broken collector must not cost the run its bundle or exit status.
                    self._on_tick.remove(callback)
                    self.event(
                        "collector",
                        name=getattr(callback, "__qualname__", "?"),
                        ok=False,
                        reason=f"{type(exc).__name__}: {exc}",
                    )
                    break
            if self._child_status is None and not psutil.pid_exists(self.child.pid):
                # Reaped by someone else (a library calling waitpid(-1) in a collector):
                # the kernel's connector still told us how it ended.
                self._child_status = (
                    self._connector_child_status
                    if self._connector_child_status is not None
                    else -signal.SIGKILL
                )
                self.event(
                    "collector",
                    name="reap",
                    ok=False,
                    reason="the command was reaped outside the supervisor's loop",
                )
                break
            if deadline is not None and now >= deadline and self._escalate_at is None:
                self.ended_by = f"run timeout ({self.options.timeout:g}s)"
                self.event("timeout", limit_s=self.options.timeout)
                self._escalate_reason = "run-timeout"
                self._escalate()
            elif self._escalate_at is not None and now >= self._escalate_at:
                if self._escalation_step >= 3:
                    # SIGKILL sent twice and the command is still there (D-state?): stop
                    # waiting for it, so the run ends and the evidence is kept.
                    self.event("abandoned", pid=self.child.pid)
                    self._child_status = -signal.SIGKILL
                    break
                self._escalate()
            time.sleep(TICK_S)
        return self._child_status

    def _finish(self, status: int) -> None:
        if self._terminal_given:
            launch.give_terminal(os.getpgrp())
        self.event(
            "command-exit",
            pid=self.child.pid if self.child else None,
            exit_status=launch.exit_status(status),
            signal=signal_name(-status) if status < 0 else None,
        )
        if self.stallwatch is not None:
            self.stallwatch.join()
        self._reap_survivors()
        for thread in self._tee_threads:
            thread.join(timeout=2.0)
        for callback in self._on_finish:
            try:
                callback(self)
            except Exception as exc:  # one collector must not lose the rest
                self.event(
                    "collector",
                    name=getattr(callback, "__name__", "?"),
                    ok=False,
                    reason=f"{type(exc).__name__}: {exc}",
                )
        if self.listener is not None:
            # The command's own exit is the run's last event; wait until the connector has
            # delivered it, so no worker's exit is missed.
            self._command_exit_seen.wait(timeout=0.5)
            self.listener.stop()
        if self.memory is not None:
            self.memory.cleanup()
        end = time.time()
        self.event("run-end", exit_status=launch.exit_status(status), ended_by=self.ended_by)
        write_json_atomic(
            self.bundle / MANIFEST,
            self._manifest(end=end, exit_status=launch.exit_status(status), ended_by=self.ended_by),
        )
        if self.watchdog is not None and self.watchdog.stdin is not None:
            try:
                self.watchdog.stdin.write(b"done")
                self.watchdog.stdin.close()
                self.watchdog.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.events.close()
        if self._output_fd is not None:
            self._output_indexed = 0.0  # the last size, whenever the one before was noted
            try:
                self._index_output()
            except OSError:
                pass
            os.close(self._output_fd)
            self._output_fd = None
        if self._output_index_fd is not None:
            os.close(self._output_index_fd)
            self._output_index_fd = None

    def _reap_survivors(self) -> None:
        """Processes of the run still alive once the command has exited: report, then end them."""
        survivors = self.run_pids()
        if not survivors:
            return
        for pid in survivors:
            self.event("survivor", pid=pid, argv=self.redactor.argv(_cmdline(pid)))
        end_processes(self, survivors, reason="survivor", grace=1.0)
        self._reap()


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def _host_facts() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "ci": bool(os.environ.get("CI")),
    }


def _tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"forensics": __version__}
    for dist in ("pytest", "pytest-xdist", "execnet", "pytest-timeout", "psutil", "py-spy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions
