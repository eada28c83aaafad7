"""The deaths of processes a test started: an incident, an expected death, or a consequence
of the test's own failure (a secondary cause on its incident, never a primary one)."""

from __future__ import annotations

from forensics.analyze.bundle_source import ProcessRecord, TestRun
from forensics.analyze.ownership import Owner
from forensics.analyze.signals import (
    signal_sender,
)
from forensics.analyze.triage_state import (
    KILL_SIGNALS,
    NATIVE_SIGNALS,
    TriageState,
    _exit_status,
    _short_argv,
    _test_at_death,
)
from forensics.model import (
    ExpectedDeath,
    Secondary,
)


class OwnedDeaths(TriageState):
    """Verdicts on the deaths of processes a test started."""

    def _owned_death_is_incident(
        self, rec: ProcessRecord, owner: Owner, signal: str | None, fatal: object
    ) -> bool:
        """Whether the death of a process a test started is an incident of the run.

        A test that starts processes decides what their deaths mean: when it passed, they are
        its business (a pool's terminate(), a crash it provoked and checked); when it failed,
        a kill is its cleanup, a consequence of the failure; a crash or an OOM kill before the
        test ended is the incident, the test's failure its consequence.
        """
        oom = rec.pid in self.oom_pids
        crashed = fatal is not None or signal in NATIVE_SIGNALS
        if signal is None and not fatal:
            return False  # an exit status is for the test to judge
        sender = signal_sender(self.data, rec.pid, signal, self.signals) if signal else None
        if sender is not None and sender.kind in ("run", "outside") and not sender.own_test_tree:
            return True  # the kernel says someone outside the test's processes sent it
        # The test running when it died is in charge (a pool's worker outlives the test that
        # started it, and a later test may crash it on purpose).
        test = _test_at_death(owner, rec)
        if test is None:
            if crashed or oom:
                return True
            self._expect(rec, owner, signal, "ended between tests (a fixture's or pool's cleanup)")
            return False
        later = f" (started by {owner.test.nodeid})" if test is not owner.test else ""
        if test.end is not None and not test.failed:
            self._expect(rec, owner, signal, f"{test.nodeid} passed{later}", test)
            return False
        if (test.failed or test.end is None) and signal in KILL_SIGNALS and not oom:
            # Killed by its own test tree while the test failed, hung or crashed its worker:
            # a consequence of that incident, not a second one.
            self.consequences.append((Owner(owner.process, test), rec, signal or "?"))
            return False
        return True

    def _expect(
        self,
        rec: ProcessRecord,
        owner: Owner,
        signal: str | None,
        why: str,
        test: TestRun | None = None,
    ) -> None:
        self.expected.append(
            ExpectedDeath(
                pid=rec.pid,
                argv=_short_argv(rec.argv),
                reason=why,
                test=(test or owner.test).nodeid,
                signal=signal,
                exit_code=_exit_status(rec),
                time=rec.end,
            )
        )

    def _cleanup_sender(self, rec: ProcessRecord, signal: str, failed: bool) -> str:
        when = "after the failure" if failed else "while the test ran (it never finished)"
        sender = signal_sender(self.data, rec.pid, signal, self.signals)
        if sender is not None and sender.source == "signals.jsonl":
            return f"{sender.description}, within the test's own processes, {when}"
        return f"{when}, most likely by the test's own processes (no sender recorded)"

    def _attach_consequences(self) -> None:
        """Processes of a failed or unfinished test, killed meanwhile: secondary to its incident."""
        for owner, rec, signal in self.consequences:
            failure = next(
                (
                    i
                    for i in self.incidents
                    if i.test == owner.test.nodeid and i.pid == owner.process.pid
                ),
                None,
            )
            if failure is None:
                outcome = "failed" if owner.test.failed else "did not finish"
                self._expect(rec, owner, signal, f"ended while {owner.test.nodeid} {outcome}")
                continue
            when = ""
            if rec.end is not None and (at := owner.test.phase_at(rec.end)):
                when = f" during {at}"
            failure.secondary.append(
                Secondary(
                    cause="external-kill",
                    summary=f"pid {rec.pid} ({_short_argv(rec.argv)}), started by the test, "
                    f"was killed by {signal}{when}: "
                    + self._cleanup_sender(rec, signal, owner.test.failed),
                )
            )
