"""The grouping signature of a bundle incident, built the way ``forensics analyze`` builds it
from logs, so a stress table and an analyze table of the same failures show the same keys."""

from __future__ import annotations

from forensics.model import Incident

try:
    from forensics.analyze.logs.signatures import normalize
except ImportError:  # pragma: no cover - the log analyzer ships alongside; older checkouts
    from forensics.analyze.triage import normalize_signature as normalize

# Deaths of a process: grouped by cause and test, as analyze groups crashes found in logs.
_DEATHS = {"native-crash", "oom-kill", "external-kill", "unexpected-exit", "hang", "unknown"}


def signature_of(incident: Incident) -> str:
    if incident.cause in _DEATHS:
        return normalize(f"{incident.cause} {incident.test or 'unknown'}")
    if incident.cause == "xdist-internal":
        return normalize(f"INTERNALERROR {_first_line(incident.summary)}")
    # A test's exception: its "Type: message" line, as the log scanner keys tracebacks.
    for evidence in incident.evidence:
        line = _first_line(evidence.excerpt)
        if line:
            return normalize(line)
    return normalize(incident.signature or incident.summary)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
