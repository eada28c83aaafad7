"""The ``wrap`` side: run a command, watch every process it starts, keep evidence of each death.

The supervisor is the parent of the wrapped command and a child subreaper, so every orphaned
descendant is re-parented to it.  It writes the bundle's journal (``events.jsonl``), tees the
command's output, forwards and escalates signals, and at the end reaps what the run left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO

import psutil

from forensics.bundle import (
    MANIFEST,
    OUTPUT,
    OUTPUT_INDEX,
    open_append,
    write_json_atomic,
)
from forensics.collect.pyspy import configured_py_spy, ptrace_access
from forensics.supervise import launch, owners
from forensics.supervise.deathwatch import DeathWatch
from forensics.supervise.escalation import Escalation
from forensics.supervise.manifest import run_manifest
from forensics.supervise.memory import MemoryWatch
from forensics.supervise.processbook import signal_name
from forensics.supervise.procevents import ProcEventListener
from forensics.supervise.signalwatch import SignalWatch
from forensics.supervise.stallwatch import StallWatch

TICK_S = 0.1
TREE_SCAN_S = 0.5


# How often output.log's size is noted with the time (at most; only while output flows).
OUTPUT_INDEX_EVERY_S = 0.2


class CommandNotRunnable(Exception):
    def __init__(self, command: str, error: OSError, status: int) -> None:
        super().__init__(f"cannot run {command!r}: {error.strerror}")
        self.status = status


class Supervisor(Escalation):
    """Runs the command and puts the parts together: output, the main loop, the end."""

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

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> int:
        opts = self.options
        self._output_fd = open_append(self.bundle / OUTPUT)
        write_json_atomic(self.bundle / MANIFEST, run_manifest(self))
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
            run_manifest(self, end=time.time(), exit_status=status, ended_by="not started"),
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
            run_manifest(
                self, end=end, exit_status=launch.exit_status(status), ended_by=self.ended_by
            ),
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
