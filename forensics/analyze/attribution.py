"""Whom to file the bug against: the shared object or package a crash or hang is in.

Native frames (py-spy) name their shared object; faulthandler gives only Python frames, where
the innermost frame outside the test harness names the package whose native code was called.
Either way the owning distribution and its version are what ``wrap`` recorded in
``system/owners.json`` (:mod:`forensics.supervise.owners`): the machine reading a bundle may
not be the one that ran the tests, so nothing is looked up here.
"""

from __future__ import annotations

from typing import Any

from forensics.blame import suspect_frame
from forensics.model import Incident
from forensics.owners import OWNERS, Owner

OWNERS_STEM = OWNERS.removesuffix(".json")


def recorded_owners(system: dict[str, Any]) -> dict[str, Any] | None:
    """The bundle's owner records by suspect, or None for a bundle from before they existed."""
    doc = system.get(OWNERS_STEM)
    if not isinstance(doc, dict):
        return None
    objects = doc.get("objects")
    return objects if isinstance(objects, dict) else {}


def attribute(incident: Incident, owners: dict[str, Any] | None) -> str | None:
    """Set ``incident.native_library`` from its first stack; the owner, when one was recorded.

    *owners* None (an older bundle): the object is named without its distribution and the
    incident says why.
    """
    if incident.cause not in ("native-crash", "hang") or not incident.stacks:
        return None
    frames = incident.stacks[0].frames
    hang = incident.extra.get("hang")
    busy = isinstance(hang, dict) and hang.get("activity") == "busy"
    if busy and (hang.get("recursion") or any(not f.native for f in frames)):  # type: ignore[union-attr]
        # Busy in Python code: whatever native frame was on top when sampled is not the hang.
        return None
    suspect = suspect_frame(frames)
    if suspect is None:
        return None
    if owners is None:
        if incident.native_library is None:
            incident.native_library = suspect
            incident.extra["owner_recorded"] = False
        return None
    owner = Owner.from_dict(owners.get(suspect), suspect)
    if owner is None or owner.distribution is None:
        return None
    incident.native_library = str(owner)
    return owner.owner()
