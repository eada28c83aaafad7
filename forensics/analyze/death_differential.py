"""The differential of a bundle incident: what else it could be, from what wrap recorded
(:mod:`forensics.analyze.differential` weighs it)."""

from __future__ import annotations

from forensics.analyze import differential
from forensics.analyze.signals import (
    signal_sender,
)
from forensics.analyze.triage_state import KILL_SIGNALS, TriageState, _dict
from forensics.model import (
    Incident,
)


class DeathDifferential(TriageState):
    """The differential hookup for bundle incidents."""

    def _differential(self, incident: Incident) -> None:
        """What else the incident could be, weighed from what the bundle recorded."""
        if incident.cause not in differential.DEATH_CAUSES:
            differential.reported_failure(incident)
            return
        rec = self.data.processes.get(incident.pid) if incident.pid is not None else None
        hang = _dict(incident.extra.get("hang"))
        facts = differential.DeathFacts(source="bundle", signal=incident.signal)
        if incident.cause == "hang" and hang.get("killed_by") != "pytest-timeout":
            facts.stalled = incident.summary.split(";")[0]
            facts.ended_by = "forensics"
        if rec is None:
            differential.apply(incident, facts)
            return
        facts.worker = rec.role == "worker"
        facts.status_observed = rec.exit_source is not None
        facts.exit_code = rec.exit_code
        facts.fault_dump = any(b.fatal for b in rec.faults) or (
            incident.cause == "native-crash" and bool(incident.stacks)
        )
        facts.oom = self.oom_pids.get(rec.pid) or (
            self.cgroup_oom[0] if incident.cause == "oom-kill" and self.cgroup_oom else None
        )
        cgroup = _dict(self.data.system.get("cgroup"))
        facts.oom_readable = isinstance(self.data.system.get("oom"), dict) or isinstance(
            _dict(cgroup.get("run")).get("oom_kill"), int
        )
        test = next((t for t in reversed(rec.tests) if t.nodeid == incident.test), None)
        if test is not None:
            facts.timeout_s, facts.timeout_method = test.timeout, test.timeout_method
            if rec.end is not None:
                facts.ran_s = round(rec.end - test.start, 3)
        if hang.get("killed_by") == "pytest-timeout":
            facts.timer_dump = any(b.header for b in rec.faults if not b.fatal)
        if incident.signal in KILL_SIGNALS:
            sender = signal_sender(self.data, rec.pid, incident.signal, self.signals)
            facts.sender = sender.description if sender is not None else None
        differential.apply(incident, facts)
