"""The options of ``wrap`` that shape a run, as ``stress`` and ``bisect`` pass them on.

One definition, so the three commands agree on names, meanings and defaults, and a stress or
bisect run is a ``wrap`` run a user could type.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

# pytest-timeout's users typically allow a test minutes; a CI job an hour or more.
DEFAULT_HANG_TIMEOUT = 300.0
DEFAULT_INTERRUPT_GRACE = 10.0


@dataclass(frozen=True)
class RunLimits:
    """Seconds; 0 turns ``hang_timeout`` and ``timeout`` off, as in ``wrap``."""

    hang_timeout: float = DEFAULT_HANG_TIMEOUT
    timeout: float = 0.0
    interrupt_grace: float = DEFAULT_INTERRUPT_GRACE

    def wrap_args(self) -> list[str]:
        return [
            "--hang-timeout",
            f"{self.hang_timeout:g}",
            "--timeout",
            f"{self.timeout:g}",
            "--interrupt-grace",
            f"{self.interrupt_grace:g}",
        ]

    def wrap_command(self, bundle: Path, argv: list[str]) -> list[str]:
        """*argv* under ``forensics wrap`` with these limits, run by this interpreter."""
        head = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle)]
        return [*head, *self.wrap_args(), "--", *argv]


# wrap's own defaults: what a run gets when the user gives none of the three options.
WRAP_DEFAULTS = RunLimits()
