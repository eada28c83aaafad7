"""Many logs into one :class:`~forensics.model.Triage`, with signatures counted across logs."""

from __future__ import annotations

from typing import IO, Any

from forensics.analyze.logs.correlate import correlate
from forensics.analyze.logs.junit import looks_like_junit, scan_junit
from forensics.analyze.logs.oom_victims import elsewhere_text
from forensics.analyze.logs.progress import count_file
from forensics.analyze.logs.reader import open_input, scan_stream
from forensics.analyze.logs.scan.logscan import LogScan
from forensics.errors import InputError
from forensics.model import Incident, Run, Source, TestCounts, Triage

# Severity order of causes: what a person should read first.
CAUSE_ORDER = {
    "native-crash": 0,
    "oom-kill": 1,
    "external-kill": 2,
    "unexpected-exit": 3,
    "hang": 4,
    "xdist-internal": 5,
    "infrastructure": 6,
    "python-exception": 7,
    "unknown": 8,
}


def _peek(stream: IO[bytes], size: int) -> bytes:
    peek = getattr(stream, "peek", None)
    return peek(size)[:size] if peek is not None else b""


def scan_path(path: str) -> LogScan:
    """Scan one log or JUnit file ('-' = stdin); InputError for what cannot be read."""
    stream = open_input(path)
    source = "<stdin>" if path == "-" else path
    try:
        head = _peek(stream, 4096)
        if looks_like_junit(head):
            return scan_junit(stream, source)
        return scan_stream(stream, source)
    except UnicodeError as exc:  # pragma: no cover - decoding always uses "replace"
        raise InputError(f"{source}: cannot decode: {exc}") from None
    finally:
        if path != "-":
            stream.close()


def analyze_logs(paths: list[str]) -> Triage:
    """Analyze logs into a triage (``source.kind == "log"``), incidents ordered by severity."""
    if not paths:
        raise InputError("no log given; pass one or more log files, or '-' for stdin")
    triage = Triage(source=Source(kind="log", paths=list(paths)), run=Run(tests=TestCounts()))
    totals = triage.run.tests
    durations: list[float] = []
    per_log: list[list[Incident]] = []
    for path in paths:
        scan = scan_path(path)
        triage.notes.extend(scan.notes)
        if scan.dropped:
            triage.notes.append(
                f"{scan.source}: {scan.dropped} findings past the per-kind limit"
                " were counted but not kept"
            )
        counts_of = scan.summary.counts if scan.summary else None
        if counts_of is None and (scan.native_aborts or scan.kills or scan.node_downs):
            # A run that died before its summary line: count what its progress lines show.
            counts_of = count_file(path)
        if counts_of is not None:
            counts = counts_of
            totals.passed += counts.passed
            totals.failed += counts.failed
            totals.error += counts.error
            totals.skipped += counts.skipped
        if scan.summary and scan.summary.duration_s is not None:
            durations.append(scan.summary.duration_s)
        if scan.exit_code is not None:
            triage.run.exit_code = scan.exit_code
        incidents = correlate(scan)
        machine_oom = elsewhere_text(scan.kills)
        if machine_oom:  # never a cause: a note, and a sign in a death's differential
            triage.notes.append(f"{scan.source}: {machine_oom}")
        for incident in incidents:
            incident.extra.setdefault("log", scan.source)
        per_log.append(incidents)
    triage.run.duration_s = round(sum(durations), 3) if durations else None
    ordered = sorted(
        (
            (CAUSE_ORDER.get(inc.cause, 9), n, k, inc)
            for n, log in enumerate(per_log)
            for k, inc in enumerate(log)
        ),
        key=lambda item: item[:3],
    )
    for number, (_rank, _n, _k, incident) in enumerate(ordered, 1):
        incident.id = f"I{number}"
        triage.incidents.append(incident)
    triage.signatures = _signatures(triage.incidents)
    blind = [
        i.worker or "?" for i in triage.incidents if i.cause == "native-crash" and not i.signal
    ]
    if blind:
        triage.notes.append(
            f"No fault dump for {', '.join(blind[:8])}: the log does not say which signal or"
            " which native frame; keep pytest's faulthandler enabled (do not pass"
            " -p no:faulthandler) or run the suite under `forensics wrap`"
        )
    return triage


def _signatures(incidents: list[Incident]) -> list[dict[str, Any]]:
    """One row per signature: how often, and in which logs (a flake rate across logs)."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for incident in incidents:
        key = (incident.signature or incident.summary, incident.cause)
        row = rows.setdefault(key, {"signature": key[0], "cause": key[1], "count": 0, "logs": {}})
        n = int(incident.extra.get("count", 1))
        row["count"] += n
        log = str(incident.extra.get("log", "?"))
        row["logs"][log] = row["logs"].get(log, 0) + n
    return sorted(rows.values(), key=lambda r: (-len(r["logs"]), -r["count"], r["signature"]))
