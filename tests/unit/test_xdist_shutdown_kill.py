"""xdist kills idle workers when it shuts down (after an INTERNALERROR): not an external kill."""

from __future__ import annotations

import json
from pathlib import Path

from forensics.analyze.triage import analyze_bundle

CONTROLLER, WORKER = 100, 200


def _bundle(tmp_path: Path, worker_killed_at: float) -> Path:
    bundle = tmp_path / "b"
    (bundle / "workers").mkdir(parents=True)
    (bundle / "manifest.json").write_text(
        json.dumps({"schema": "forensics.bundle/1", "start": 0.0, "end": 10.0, "exit_status": 3})
    )
    events = [
        {"t": 0.1, "kind": "proc-start", "pid": CONTROLLER, "ppid": 1, "argv": ["pytest"]},
        {"t": 0.5, "kind": "proc-start", "pid": WORKER, "ppid": CONTROLLER, "argv": ["python"]},
        {
            "t": worker_killed_at,
            "kind": "proc-exit",
            "pid": WORKER,
            "exit_code": None,
            "signal": "SIGKILL",
            "source": "connector",
        },
    ]
    (bundle / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    controller = [
        {"t": 0.2, "kind": "session-start", "role": "controller", "worker": None},
        {"t": 0.6, "kind": "node-ready", "worker": "gw0", "worker_pid": WORKER},
        {
            "t": 5.0,
            "kind": "internalerror",
            "text": "INTERNALERROR> KeyError: <WorkerController gw0>",
        },
    ]
    worker = [
        {"t": 0.7, "kind": "session-start", "role": "worker", "worker": "gw0"},
        {"t": 1.0, "kind": "test-start", "nodeid": "t.py::test_a"},
        {
            "t": 1.1,
            "kind": "phase-end",
            "nodeid": "t.py::test_a",
            "phase": "call",
            "outcome": "passed",
        },
        {"t": 1.2, "kind": "test-end", "nodeid": "t.py::test_a"},
    ]
    for pid, records in ((CONTROLLER, controller), (WORKER, worker)):
        (bundle / "workers" / f"{pid}.jsonl").write_text(
            "".join(json.dumps({"pid": pid, **r}) + "\n" for r in records)
        )
    return bundle


def test_idle_worker_killed_during_shutdown_is_a_note(tmp_path: Path) -> None:
    triage = analyze_bundle(_bundle(tmp_path, worker_killed_at=6.0))
    assert [i.cause for i in triage.incidents] == ["xdist-internal"]
    assert any("gw0 was idle and ended by SIGKILL" in note for note in triage.notes)


def test_idle_worker_killed_before_shutdown_is_an_external_kill(tmp_path: Path) -> None:
    triage = analyze_bundle(_bundle(tmp_path, worker_killed_at=3.0))
    [incident] = triage.incidents
    assert (incident.cause, incident.signal, incident.worker) == ("external-kill", "SIGKILL", "gw0")
    assert [s.cause for s in incident.secondary] == ["xdist-internal"]
