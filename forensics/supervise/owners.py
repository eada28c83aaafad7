"""At the end of a run: the owner of every suspect the recorded stacks name.

The analyzer files a crash or a hang against the first frame outside the harness and the
runtime (:func:`forensics.blame.suspect_frame`); the distribution that installed it can only be
known where the run's packages are, so it is resolved here, once per suspect, and stored in
``system/owners.json``.  Stacks come from the agents' fault files, the stall evidence and the
fatal blocks a child without a fault file of its own printed to the console.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from forensics.blame import suspect_frame
from forensics.bundle import (
    FAULTS_DIR,
    OUTPUT,
    STACKS_DIR,
    SYSTEM_DIR,
    is_real_dir,
    is_regular_file,
    read_bundle_bytes,
    write_json_atomic,
)
from forensics.collect.nativelib import resolve_owner
from forensics.faultparse import fatal_blocks_in, parse_fault_text
from forensics.model import Frame
from forensics.owners import OWNERS
from forensics.stackrecords import frames_from_record

if TYPE_CHECKING:
    from forensics.supervise.supervisor import Supervisor

# Bounds on what one run may cost at its end: files read, their size, suspects looked up.
_MAX_FILES = 2000
_MAX_FILE_BYTES = 4 * 1024 * 1024
_MAX_BLOCKS = 1000
_MAX_SUSPECTS = 200


def finish(sup: Supervisor) -> None:
    """Last of the supervisor's finish callbacks: every stack is on disk by then."""
    record_owners(sup.bundle)


def record_owners(bundle: Path) -> dict[str, Any]:
    """Resolve and store the owners; returns what was written."""
    suspects: dict[str, None] = {}
    for frames in _recorded_stacks(bundle):
        suspect = suspect_frame(frames)
        if suspect is not None:
            suspects.setdefault(suspect)
            if len(suspects) >= _MAX_SUSPECTS:
                break
    doc = {"objects": {s: resolve_owner(s).to_dict() for s in suspects}}
    write_json_atomic(bundle / SYSTEM_DIR / OWNERS, doc)
    return doc


def _files(folder: Path, suffix: str) -> list[Path]:
    if not is_real_dir(folder):
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(suffix))[:_MAX_FILES]


def _text(path: Path) -> str:
    try:
        return read_bundle_bytes(path, _MAX_FILE_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""


def _recorded_stacks(bundle: Path) -> Iterator[list[Frame]]:
    for path in _files(bundle / FAULTS_DIR, ".log"):
        for block in parse_fault_text(_text(path)):
            for stack in block.threads:
                yield stack.frames
    # Stall evidence, and the deaths' native frames (whose owners are in each record already,
    # resolved the same way).
    for suffix, key in ((".evidence.json", "stacks"), (".native.json", "threads")):
        for path in _files(bundle / STACKS_DIR, suffix):
            try:
                doc = json.loads(_text(path) or "{}")
            except ValueError:
                continue
            records = doc.get(key) if isinstance(doc, dict) else None
            for raw in records if isinstance(records, list) else []:
                if isinstance(raw, dict):
                    yield frames_from_record(raw)
    output = bundle / OUTPUT
    if is_regular_file(output):
        with open(output, "rb") as fh:
            for _, _, block in fatal_blocks_in(fh, _MAX_BLOCKS):
                for stack in block.threads:
                    yield stack.frames
