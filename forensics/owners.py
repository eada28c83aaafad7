"""Whom to file a bug against, as a bundle records it.

``wrap`` resolves the owner of each shared object or installed file a recorded stack blames
while the run's environment exists (the installed distributions' RECORDs, the system's package
database) and stores it in ``system/owners.json``; the analyzer reads that and never looks
anything up on the machine it runs on, which may not be the one that ran the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# In the bundle's system/ folder: {"objects": {suspect: Owner.to_dict()}}.
OWNERS = "owners.json"


@dataclass(frozen=True)
class Owner:
    path: str
    # The Python distribution that installed the object, or the system package's source name.
    distribution: str | None
    version: str | None
    system: bool = False

    def owner(self) -> str:
        """``robin-sparkless 0.11.0`` or ``system glibc 2.36``: whom to file the bug against."""
        name = self.distribution or "unknown"
        text = f"{name} {self.version}" if self.version else name
        return f"system {text}" if self.system else text

    def __str__(self) -> str:
        return f"{self.path} ({self.owner()})" if self.distribution else self.path

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "distribution": self.distribution,
            "version": self.version,
            "system": self.system,
        }

    @classmethod
    def from_dict(cls, raw: object, default_path: str) -> Owner | None:
        """The record as a bundle holds it (hostile input: every field checked)."""
        if not isinstance(raw, dict):
            return None
        path = raw.get("path") if isinstance(raw.get("path"), str) else default_path
        dist, version = raw.get("distribution"), raw.get("version")
        return cls(
            str(path),
            dist if isinstance(dist, str) else None,
            version if isinstance(version, str) else None,
            raw.get("system") is True,
        )
