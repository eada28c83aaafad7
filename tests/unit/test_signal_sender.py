"""Who sent the kill: signals.jsonl records read against the bundle's processes and tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from forensics.analyze.bundle_source import load_bundle
from forensics.analyze.signals import SignalLog, handled_signals, signal_sender

SUPERVISOR, CONTROLLER, GW0, GW1, CHILD = 10, 100, 200, 300, 400


def _bundle(tmp_path: Path, signals: list[dict[str, Any]], oom: bool = False) -> Path:
    bundle = tmp_path / "b"
    (bundle / "workers").mkdir(parents=True)
    (bundle / "system").mkdir()
    manifest = {"schema": "forensics.bundle/1", "start": 0.0, "end": 20.0, "exit_status": 1}
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "supervisor_pid": SUPERVISOR}))
    events = [
        {"t": 0.1, "kind": "proc-start", "pid": CONTROLLER, "ppid": SUPERVISOR, "argv": ["py"]},
        {"t": 0.5, "kind": "proc-start", "pid": GW0, "ppid": CONTROLLER, "argv": ["python"]},
        {"t": 0.5, "kind": "proc-start", "pid": GW1, "ppid": CONTROLLER, "argv": ["python"]},
        {"t": 2.5, "kind": "proc-start", "pid": CHILD, "ppid": GW1, "argv": ["sleep", "60"]},
        {"t": 5.0, "kind": "proc-exit", "pid": GW0, "signal": "SIGKILL", "source": "connector"},
        {"t": 5.0, "kind": "proc-exit", "pid": CHILD, "signal": "SIGTERM", "source": "connector"},
    ]
    (bundle / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    crumbs = {
        CONTROLLER: [{"t": 0.2, "kind": "session-start", "role": "controller"}],
        GW0: [
            {"t": 0.7, "kind": "session-start", "role": "worker", "worker": "gw0"},
            {"t": 1.0, "kind": "test-start", "nodeid": "t.py::test_victim"},
        ],
        GW1: [
            {"t": 0.7, "kind": "session-start", "role": "worker", "worker": "gw1"},
            {"t": 2.0, "kind": "test-start", "nodeid": "t.py::test_killer"},
        ],
        CHILD: [
            {"t": 2.6, "kind": "process-start", "ppid": GW1, "parent_test": "t.py::test_killer"}
        ],
    }
    for pid, records in crumbs.items():
        (bundle / "workers" / f"{pid}.jsonl").write_text(
            "".join(json.dumps({"pid": pid, **r}) + "\n" for r in records)
        )
    (bundle / "signals.jsonl").write_text("".join(json.dumps(s) + "\n" for s in signals))
    if oom:
        kill = {"pid": GW0, "ours": True, "line": "Killed process 200 (python)"}
        (bundle / "system" / "oom.json").write_text(json.dumps({"kills": [kill]}))
    return bundle


def _gen(sender: int, receiver: int, sig: str = "SIGKILL", **extra: Any) -> dict[str, Any]:
    return {
        "t": 4.9,
        "event": "generate",
        "signal": sig,
        "code": "user",
        "sender_pid": sender,
        "sender_comm": "python",
        "pid": receiver,
        "result": "delivered",
        **extra,
    }


def _sender(bundle: Path, pid: int, sig: str) -> Any:
    data = load_bundle(bundle)
    return signal_sender(data, pid, sig, SignalLog.load(bundle))


def test_another_workers_test(tmp_path: Path) -> None:
    facts = _sender(_bundle(tmp_path, [_gen(GW1, GW0)]), GW0, "SIGKILL")
    assert facts.kind == "run" and facts.sender_test == "t.py::test_killer"
    assert facts.description == "SIGKILL from pid 300 (python, gw1 running t.py::test_killer)"
    assert facts.own_test_tree is False


def test_a_child_killed_by_the_test_that_started_it_is_its_own_doing(tmp_path: Path) -> None:
    facts = _sender(_bundle(tmp_path, [_gen(GW1, CHILD, "SIGTERM")]), CHILD, "SIGTERM")
    assert facts.kind == "run" and facts.own_test_tree is True


def test_outside_the_run(tmp_path: Path) -> None:
    record = _gen(1, GW0, sender_comm="systemd", sender_argv=["/sbin/init"])
    facts = _sender(_bundle(tmp_path, [record]), GW0, "SIGKILL")
    assert facts.kind == "outside"
    assert facts.description == "SIGKILL from pid 1 (systemd: /sbin/init, outside the run)"


def test_forensics_and_the_oom_killer(tmp_path: Path) -> None:
    assert _sender(_bundle(tmp_path, [_gen(SUPERVISOR, GW0)]), GW0, "SIGKILL").kind == "forensics"
    oom = _bundle(tmp_path / "o", [_gen(GW1, GW0, code="kernel")], oom=True)
    facts = _sender(oom, GW0, "SIGKILL")
    assert (facts.kind, facts.description) == ("oom-killer", "the kernel's OOM killer")


def test_without_capture_the_journal_still_names_known_senders(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, [], oom=True)
    (bundle / "signals.jsonl").unlink()
    facts = _sender(bundle, GW0, "SIGKILL")
    assert facts.kind == "oom-killer" and facts.source == "kernel log"
    assert _sender(bundle, CHILD, "SIGTERM") is None


def test_a_signal_after_the_death_is_not_its_cause(tmp_path: Path) -> None:
    late = _gen(GW1, GW0, t=9.0)
    assert _sender(_bundle(tmp_path, [late]), GW0, "SIGKILL") is None


def test_sigint_taken_by_a_handler(tmp_path: Path) -> None:
    deliver = {
        "t": 1.5,
        "event": "deliver",
        "signal": "SIGINT",
        "code": "user",
        "pid": GW1,
        "disposition": "handler",
        "handler": "0x7f00",
        "handler_object": "/usr/lib/libpython3.11.so.1.0",
    }
    bundle = _bundle(tmp_path, [deliver])
    [handled] = handled_signals(load_bundle(bundle), SignalLog.load(bundle))
    assert handled.went_on is True
    assert handled.sentence().startswith("SIGINT delivered to pid 300 (gw1), handled by the Python")
    assert handled.sentence().endswith("the process went on")
