"""What the supervisor's parts share: the options, the journal, the callbacks of the collectors,
the state of the run (one instance per ``wrap``)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.bundle import EVENTS, JsonlWriter
from forensics.redact import Redactor
from forensics.supervise.deathwatch import DeathWatch
from forensics.supervise.memory import MemoryWatch
from forensics.supervise.procevents import ProcEventListener
from forensics.supervise.signalwatch import SignalWatch
from forensics.supervise.stallwatch import StallWatch

if TYPE_CHECKING:
    from forensics.supervise.supervisor import Supervisor


@dataclass
class _Proc:
    pid: int
    ppid: int | None
    argv: list[str]


# After the first forwarded SIGINT/SIGTERM: how long the command gets to exit by itself.
DEFAULT_INTERRUPT_GRACE_S = 10.0


@dataclass
class WrapOptions:
    argv: list[str]
    bundle: Path
    hang_timeout: float | None = None
    timeout: float | None = None
    interrupt_grace: float = DEFAULT_INTERRUPT_GRACE_S
    foreground: bool = False
    keep_cores: bool = False


class RunState:
    """The state of one run, the journal and the collectors' callbacks."""

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
