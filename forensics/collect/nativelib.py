"""Whom to file a native crash against: a shared object -> the distribution that installed it.

A native frame or a fault address names a shared object; the report must name the project
(``robin-sparkless 0.11.0``), so the object is looked up in the installed distributions'
RECORD files, then by its directory, and a system library by its Debian package.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from forensics.owners import Owner

_SHARED_OBJECT = re.compile(r"\.so(?:\.\d+)*$|\.abi3\.so$|\.cpython-[^/]*\.so$")
_MAPS_LINE = re.compile(r"^([0-9a-fA-F]+)-([0-9a-fA-F]+)\s+\S+\s+[0-9a-fA-F]+\s+\S+\s+\d+\s*(.*)$")


@dataclass(frozen=True)
class _Owner:
    name: str
    version: str


@dataclass
class _Index:
    by_path: dict[str, _Owner]
    by_name: dict[str, list[tuple[str, _Owner]]]
    by_dir: dict[str, _Owner]


def _real(path: str) -> str:
    try:
        return os.path.realpath(path)
    except OSError:
        return str(path)


@cache
def _index() -> _Index:
    """Every shared object the installed distributions' RECORDs list, built once per process."""
    by_path: dict[str, _Owner] = {}
    by_name: dict[str, list[tuple[str, _Owner]]] = defaultdict(list)
    dirs: dict[str, set[_Owner]] = defaultdict(set)
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name:
            continue
        owner = _Owner(name, dist.version)
        # realpath once per distribution: per file it makes the index 20x slower to build.
        base = _real(str(dist.locate_file("")))
        for file in dist.files or ():
            located = os.path.normpath(os.path.join(base, str(file)))
            directory = os.path.dirname(located)
            # A package's own directory identifies it; site-packages itself holds everyone.
            if directory != base and not directory.endswith(("__pycache__", ".dist-info")):
                dirs[directory].add(owner)
            if _SHARED_OBJECT.search(file.name):
                by_path[located] = owner
                by_name[file.name].append((located, owner))
    by_dir = {d: next(iter(owners)) for d, owners in dirs.items() if len(owners) == 1}
    return _Index(by_path, dict(by_name), by_dir)


@cache
def _dpkg_owner(path: str) -> Owner | None:
    """The Debian package (by source name, e.g. glibc for libc6) that installed ``path``."""
    dpkg = shutil.which("dpkg")
    query = shutil.which("dpkg-query")
    if not dpkg or not query:
        return None
    try:
        out = subprocess.run(
            [dpkg, "-S", path], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    base = os.path.basename(path)
    package = None
    for line in out.splitlines():
        pkgs, _, file = line.partition(": ")
        if os.path.basename(file.strip()) == base:
            package = pkgs.split(",")[0].strip()
            file_path = file.strip()
            break
    if package is None:
        return None
    try:
        fields = subprocess.run(
            [query, "-W", "-f=${source:Package}\t${source:Version}", package],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.split("\t")
    except (OSError, subprocess.SubprocessError):
        fields = []
    source = fields[0].strip() if fields and fields[0].strip() else package.split(":")[0]
    version = fields[1].strip() if len(fields) > 1 and fields[1].strip() else None
    shown = path if os.path.isabs(path) else file_path
    return Owner(shown, source, version, system=True)


def attribute_library(path_or_soname: str) -> Owner | None:
    """The distribution (and version) that installed a shared object, or its system package."""
    if not path_or_soname:
        return None
    index = _index()
    if os.path.isabs(path_or_soname):
        real = _real(path_or_soname)
        owner = (
            index.by_path.get(real)
            or index.by_path.get(os.path.normpath(path_or_soname))
            or index.by_dir.get(os.path.dirname(real))
        )
        if owner is not None:
            return Owner(path_or_soname, owner.name, owner.version)
    else:
        candidates = index.by_name.get(os.path.basename(path_or_soname), [])
        owners = {owner for _, owner in candidates}
        if len(owners) == 1:
            path, owner = candidates[0]
            return Owner(path, owner.name, owner.version)
    return _dpkg_owner(path_or_soname)


def resolve_owner(path: str) -> Owner:
    """The owner of a shared object or installed file, as the bundle records it (the owner's
    distribution is None when nothing claims it)."""
    # dpkg knows /lib/... while the maps say /usr/lib/... (merged /usr): then by name.
    found = attribute_library(path) or (
        attribute_library(os.path.basename(path)) if os.path.isabs(path) else None
    )
    if found is None:
        return Owner(path, None, None)
    if os.path.isabs(path):
        return Owner(path, found.distribution, found.version, found.system)
    return found


def parse_maps(maps_text: str) -> list[tuple[int, int, str]]:
    """``/proc/PID/maps`` as (start, end, pathname) for the file-backed mappings."""
    out = []
    for line in maps_text.splitlines():
        m = _MAPS_LINE.match(line.strip())
        if not m:
            continue
        path = m.group(3).strip()
        if path.endswith(" (deleted)"):
            path = path[: -len(" (deleted)")]
        if path.startswith("/"):
            out.append((int(m.group(1), 16), int(m.group(2), 16), path))
    return out


def resolve_address(pid: int, address: int, maps_text: str) -> str | None:
    """The file mapped at ``address`` in process ``pid``.

    ``maps_text`` is the process's maps captured while it lived (a crashed process has no
    /proc entry left); when it is empty, the live ``/proc/PID/maps`` is read instead.
    """
    if not maps_text:
        try:
            maps_text = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            return None
    for start, end, path in parse_maps(maps_text):
        if start <= address < end:
            return path
    return None
