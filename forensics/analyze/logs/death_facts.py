"""What the log tells about a death, for the differential: the dead worker's facts (signal,
fault dump, OOM, kernel fault, timeout settings, silence, how long its test ran), and the
weighing of an incident no dead worker stands behind (a kill, a cancel, a failure)."""

from __future__ import annotations

from forensics.analyze import differential
from forensics.analyze.logs.crashes import Crash
from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.findings import KillEvent
from forensics.analyze.logs.kernel import KernelFault, oom_summary
from forensics.analyze.logs.kills import unannounced_kill
from forensics.analyze.logs.oom_victims import elsewhere_text, split_oom
from forensics.analyze.logs.scan import LogScan
from forensics.model import Incident


def death_facts(
    scan: LogScan,
    crash: Crash,
    incident: Incident,
    oom: list[KillEvent],
    kernel: KernelFault | None = None,
) -> differential.DeathFacts:
    """What the log tells about one dead worker, for the differential."""
    head = scan.header
    down = next((d for d in scan.node_downs if d.line == crash.line), None)
    native = next((n for n in crash.natives), None)
    facts = differential.DeathFacts(
        source="log",
        worker=crash.worker is not None,
        signal=incident.signal,
        fault_dump=crash.fault is not None,
        native_abort=f"{native.kind}: {native.message}"[:200] if native else None,
        oom=oom_text(oom),
        oom_elsewhere=elsewhere_text(scan.kills),
        kernel_fault=kernel.describe() if kernel else None,
        unannounced_kill=unannounced_kill(scan),
        timeout_s=head.timeout_s,
        timeout_method=head.timeout_method,
        timeout_plugin=("timeout" in head.plugins) if head.plugins_seen else None,
        silent_s=down.silent_s if down else None,
        silent_of=down.silent_of if down else None,
        since_begin_s=down.since_begin_s if down else None,
    )
    timing_facts(scan, crash.test, facts, down.time if down else None)
    return facts


def oom_text(oom: list[KillEvent]) -> str | None:
    """The OOM kill in words (victim, memory, limit), else the kernel's line itself."""
    if not oom:
        return None
    return oom_summary([k.excerpt for k in oom]) or oom[0].excerpt


def timing_facts(
    scan: LogScan, test: str | None, facts: differential.DeathFacts, ended: float | None = None
) -> None:
    """How long *test* ran and the timeout it had, from the figures the log holds."""
    times = scan.times
    ran = times.ran(test, ended)
    if ran is not None:
        facts.ran_s, facts.ran_from, facts.ran_at_least = ran.secs, ran.source, ran.lower_bound
    own = times.limit_of(test)
    if own is not None:
        facts.timeout_s = own  # the test's own limit, a @pytest.mark.timeout marker included
    elif facts.timeout_s is None and times.limit is not None:
        facts.timeout_s = times.limit
        facts.timeout_from = f"a 'Timeout (>{times.limit:g}s)' failure in the log"
        facts.timeout_plugin = True


def weigh_rest(scan: LogScan, incident: Incident, kernel: list[KernelFault]) -> None:
    """The differential of an incident no dead worker stands behind (a kill, a failure).

    A process that died of a crash signal takes the next kernel fault line nobody claimed.
    """
    if incident.cause not in differential.DEATH_CAUSES:
        differential.reported_failure(incident)
        return
    fault = kernel.pop(0) if kernel and incident.signal in differential.NATIVE_SIGNALS else None
    if fault is not None:
        incident.evidence.insert(0, ev(scan, fault.line, fault.excerpt))
        incident.native_library = incident.native_library or fault.blame
    oom = split_oom(scan.kills)[0]
    head = scan.header
    facts = differential.DeathFacts(
        source="log",
        worker=False,  # no "node down" stands behind it
        signal=incident.signal,
        exit_code=incident.exit_code,
        oom=oom_text(oom) if incident.cause == "oom-kill" else None,
        oom_elsewhere=elsewhere_text(scan.kills),
        kernel_fault=fault.describe() if fault else None,
        unannounced_kill=unannounced_kill(scan),
        timeout_s=head.timeout_s,
        timeout_method=head.timeout_method,
        timeout_plugin=("timeout" in head.plugins) if head.plugins_seen else None,
    )
    if incident.cause == "hang":
        facts.stalled = incident.summary
        facts.ended_by = "the CI job" if "CI job" in incident.summary else None
    differential.apply(incident, facts)
