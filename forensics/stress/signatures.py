"""The grouping signature of an incident: the key ``forensics analyze`` and the bundle triage
both give it, so a stress table and an analyze table of the same failures show the same keys."""

from __future__ import annotations

from forensics.analyze.logs.signatures import normalize
from forensics.model import Incident


def signature_of(incident: Incident) -> str:
    return incident.signature or normalize(f"{incident.cause} {incident.summary}")
