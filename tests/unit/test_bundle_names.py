"""Hostile file names in a bundle: digits that str.isdigit() accepts but int() does not."""

from __future__ import annotations

import json
from pathlib import Path

from forensics.analyze.triage import analyze_bundle


def test_superscript_digit_names_are_ignored(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    for sub in ("workers", "faults"):
        (bundle / sub).mkdir(parents=True)
    (bundle / "manifest.json").write_text(json.dumps({"schema": "forensics.bundle/1"}))
    (bundle / "workers" / "\u00b23.jsonl").write_text('{"kind": "test-start", "nodeid": "x"}\n')
    (bundle / "faults" / "\u00b9.log").write_text("Fatal Python error: Aborted\n")
    triage = analyze_bundle(bundle)
    assert triage.incidents == []
