"""The user's pytest command at a given xdist level.

Level 0 becomes ``-n 0`` rather than ``-p no:xdist``: with ``-n 0`` xdist stays loaded, so
xdist options already in the command (``--dist loadfile``, ``--max-worker-restart``) and in
ini files stay valid, and pytest runs every test in its own process, as a serial run does.
The flip side: the command needs pytest-xdist installed even for level 0.
"""

from __future__ import annotations

import os
import shlex

from forensics.errors import UsageError


def parse_levels(text: str) -> list[int]:
    levels: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit():
            raise UsageError(
                f"--parallel takes worker counts separated by commas, like 0,4,8 "
                f"(0 = without xdist); got {text!r}"
            )
        if int(part) not in levels:
            levels.append(int(part))
    return levels


def without_workers(argv: list[str]) -> list[str]:
    """*argv* with any ``-n X``, ``-nX``, ``--numprocesses[=]X`` removed."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-n", "--numprocesses"):
            skip = True
        elif not (
            arg.startswith("--numprocesses=")
            or (arg.startswith("-n") and len(arg) > 2 and not arg.startswith("--"))
        ):
            out.append(arg)
    return out


def at_level(argv: list[str], level: int) -> list[str]:
    return [*without_workers(argv), "-n", str(level)]


def check_pytest_command(argv: list[str]) -> None:
    if not any("pytest" in os.path.basename(arg) or arg == "py.test" for arg in argv[:4]):
        raise UsageError(
            f"stress runs a pytest command, e.g. `forensics stress -- python -m pytest tests/`; "
            f"got {shlex.join(argv)!r}"
        )


def command_key(argv: list[str]) -> str:
    """The command as the history knows it: the same whatever -n it was given."""
    return shlex.join(without_workers(argv))
