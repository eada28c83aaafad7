"""Signals: what the user sends is forwarded to the command, a second Ctrl-C or a timeout
escalates (SIGTERM, then SIGKILL to the whole run), and every signal is journalled."""

from __future__ import annotations

import os
import signal
import time

from forensics.supervise.processbook import ProcessBook, signal_name
from forensics.supervise.stallwatch import take_evidence

TERM_GRACE_S = 5.0


class Escalation(ProcessBook):
    """Forwarding and escalation of signals."""

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
