"""The run's manifest: the command, the host, the tools' versions, the environment
(redacted), written at the start and again at the end."""

from __future__ import annotations

import os
import platform
import socket
import sys
from typing import Any

import psutil

from forensics import __version__
from forensics.bundle import (
    BUNDLE_SCHEMA,
)
from forensics.supervise.run_state import RunState


def _host_facts() -> dict[str, Any]:
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "ci": bool(os.environ.get("CI")),
    }


def _tool_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {"forensics": __version__}
    for dist in ("pytest", "pytest-xdist", "execnet", "pytest-timeout", "psutil", "py-spy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def run_manifest(sup: RunState, **end: Any) -> dict[str, Any]:
    """``manifest.json``: *end* holds the end time, exit status and ``ended_by`` once known."""
    return {
        "schema": BUNDLE_SCHEMA,
        "run_id": sup.run_id,
        "supervisor_pid": os.getpid(),
        "command": sup.redactor.argv(sup.options.argv),
        "cwd": os.getcwd(),
        "start": sup.start_time,
        "end": end.get("end"),
        "exit_status": end.get("exit_status"),
        "ended_by": end.get("ended_by"),
        "options": {
            "hang_timeout": sup.options.hang_timeout,
            "timeout": sup.options.timeout,
            "interrupt_grace": sup.options.interrupt_grace,
        },
        "host": _host_facts(),
        "tools": _tool_versions(),
        "environment": sup.redactor.env(dict(os.environ)),
    }
