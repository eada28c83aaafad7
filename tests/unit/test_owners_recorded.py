"""Library owners: resolved by `wrap` from the run's own stacks, read by the analyzer as the
bundle holds them (a bundle is often analyzed on another machine)."""

from __future__ import annotations

import json
from pathlib import Path

import psutil

from forensics.analyze.attribution import attribute, recorded_owners
from forensics.analyze.bundle_source import load_bundle
from forensics.model import Frame, Incident, Stack
from forensics.supervise.owners import record_owners

PSUTIL_INIT = str(Path(psutil.__file__).resolve())


def _fault_text(path: str) -> str:
    return (
        "Fatal Python error: Segmentation fault\n\n"
        "Current thread 0x00007f1c2d6f3740 (most recent call first):\n"
        f'  File "{path}", line 300 in cpu_count\n'
        '  File "/work/tests/test_x.py", line 7 in test_segv\n'
        '  File "/venv/lib/python3.12/site-packages/_pytest/python.py", line 195 in '
        "pytest_pyfunc_call\n\n"
    )


def _bundle(tmp_path: Path, fault: str, output: str = "") -> Path:
    for sub in ("faults", "stacks", "system", "workers"):
        (tmp_path / sub).mkdir()
    (tmp_path / "faults" / "123.log").write_text(fault)
    (tmp_path / "output.log").write_text(output)
    manifest = {"schema": "forensics.bundle/1", "argv": ["pytest"], "start": 1.0}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "events.jsonl").write_text("")
    return tmp_path


def _crash(frames_from: str) -> Incident:
    frames = [
        Frame(name="cpu_count", file=frames_from, line=300),
        Frame(name="test_segv", file="/work/tests/test_x.py", line=7),
    ]
    return Incident(
        id="I1",
        cause="native-crash",
        confidence="high",
        summary="",
        stacks=[Stack(pid=123, thread="0x1", frames=frames)],
    )


def test_wrap_records_the_owner_of_what_a_fault_file_blames(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, _fault_text(PSUTIL_INIT))
    doc = record_owners(bundle)
    on_disk = json.loads((bundle / "system" / "owners.json").read_text())
    assert on_disk == doc
    owner = doc["objects"][PSUTIL_INIT]
    assert (owner["distribution"], owner["version"]) == ("psutil", psutil.__version__)
    # The test file and pytest's frames are never suspects.
    assert list(doc["objects"]) == [PSUTIL_INIT]

    owners = recorded_owners(load_bundle(bundle).system)
    incident = _crash(PSUTIL_INIT)
    assert attribute(incident, owners) == f"psutil {psutil.__version__}"
    assert incident.native_library == f"{PSUTIL_INIT} (psutil {psutil.__version__})"


def test_a_block_printed_only_on_the_console_is_resolved_too(tmp_path: Path) -> None:
    # A `python -S` child has no fault file of its own: its dump is in output.log only.
    bundle = _bundle(tmp_path, "", output="collected 1 item\n" + _fault_text(PSUTIL_INIT))
    assert PSUTIL_INIT in record_owners(bundle)["objects"]


def test_the_analyzer_uses_only_what_the_bundle_recorded(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, _fault_text(PSUTIL_INIT))
    record_owners(bundle)
    owners = recorded_owners(load_bundle(bundle).system)
    # An object wrap did not resolve stays unowned, though this machine could look it up.
    incident = _crash(PSUTIL_INIT.replace("__init__.py", "_common.py"))
    assert attribute(incident, owners) is None
    assert incident.native_library is None


def test_an_older_bundle_names_the_library_without_its_distribution(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, _fault_text(PSUTIL_INIT))  # no system/owners.json
    owners = recorded_owners(load_bundle(bundle).system)
    assert owners is None
    incident = _crash(PSUTIL_INIT)
    assert attribute(incident, owners) is None
    assert incident.native_library == PSUTIL_INIT
    assert incident.extra["owner_recorded"] is False
