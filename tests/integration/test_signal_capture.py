"""Signal capture through the kernel's tracepoints: every kill names its sender.

Real runs under `forensics wrap` (root: tracefs): a test that SIGKILLs the worker running
another test, a SIGTERM sent from outside the run, and a SIGINT caught by a handler that does
nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import PYTEST, clean_env, report_json, run

pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("signal capture needs root (tracefs and the signal tracepoints)")


def _wrap(suite: Path, *pytest_args: str) -> dict[str, Any]:
    bundle = suite / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle)]
    argv += ["--hang-timeout", "0", "--", *PYTEST, "-p", "no:randomly", *pytest_args]
    proc = run(argv, suite, env=clean_env())
    triage = report_json(bundle, suite)
    triage["_stderr"] = proc.stderr
    return triage


def test_a_test_that_kills_another_worker_is_named(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_a_victim.py").write_text(
        textwrap.dedent(
            """
            import os, time
            def test_victim():
                if os.path.exists("victim.pid"):
                    return  # xdist runs it again on the replacement worker
                with open("victim.pid.tmp", "w") as fh:
                    fh.write(str(os.getpid()))
                os.rename("victim.pid.tmp", "victim.pid")
                time.sleep(60)
            """
        )
    )
    (tmp_path / "test_b_killer.py").write_text(
        textwrap.dedent(
            """
            import os, signal, time
            def test_killer():
                for _ in range(300):
                    if os.path.exists("victim.pid"):
                        break
                    time.sleep(0.1)
                time.sleep(0.3)
                os.kill(int(open("victim.pid").read()), signal.SIGKILL)
            """
        )
    )
    triage = _wrap(tmp_path, "-n", "2", "--dist", "loadfile", ".")
    victim = int((tmp_path / "victim.pid").read_text())
    found = [i for i in triage["incidents"] if i["pid"] == victim]
    assert len(found) == 1, triage["incidents"]
    incident = found[0]
    assert incident["cause"] == "external-kill"
    sender = incident["extra"]["signal_sender"]
    assert sender["kind"] == "run", sender
    assert sender["sender_test"] == "test_b_killer.py::test_killer"
    assert "running test_b_killer.py::test_killer" in incident["summary"]
    assert f"SIGKILL from pid {sender['sender_pid']} (" in incident["summary"]
    assert sender["own_test_tree"] is False
    # Drawn on the timeline: sender -> receiver.
    assert any(
        m["receiver_pid"] == victim and m["sender_pid"] == sender["sender_pid"]
        for m in triage["signals"]
    )


def test_sigterm_from_outside_names_the_sender_pid(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_wait.py").write_text(
        textwrap.dedent(
            """
            import os, subprocess, sys, time
            def test_waits():
                child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
                with open("child.pid.tmp", "w") as fh:
                    fh.write(str(child.pid))
                os.rename("child.pid.tmp", "child.pid")
                child.wait()
            """
        )
    )
    bundle = tmp_path / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--hang-timeout"]
    argv += ["0", "--", *PYTEST, "-p", "no:randomly", "test_wait.py"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), stderr=subprocess.PIPE)
    pid_file = tmp_path / "child.pid"
    for _ in range(300):
        if pid_file.exists():
            break
        time.sleep(0.1)
    time.sleep(0.3)
    # Sent by a process that is not part of the run: this test's own `kill` command.
    killer = subprocess.Popen(["kill", "-TERM", pid_file.read_text()])
    killer.wait()
    proc.communicate(timeout=120)
    triage = report_json(bundle, tmp_path)
    child = int(pid_file.read_text())
    incident = next(i for i in triage["incidents"] if i["pid"] == child)
    sender = incident["extra"]["signal_sender"]
    assert sender["kind"] == "outside"
    assert sender["sender_pid"] == killer.pid
    assert f"SIGTERM from pid {killer.pid} (" in incident["summary"]
    assert "outside the run" in incident["summary"]


def test_sigint_to_a_handler_that_does_nothing(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_swallow.py").write_text(
        textwrap.dedent(
            """
            import os, signal, time
            def test_swallows_interrupt():
                signal.signal(signal.SIGINT, lambda signum, frame: None)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)

            def test_after():
                time.sleep(0.2)
            """
        )
    )
    triage = _wrap(tmp_path, "test_swallow.py")
    notes = [n for n in triage["notes"] if n.startswith("SIGINT delivered")]
    assert len(notes) == 1, triage["notes"]
    assert "handled by the Python signal handler" in notes[0]
    assert "while running test_swallow.py::test_swallows_interrupt" in notes[0]
    assert notes[0].endswith("the process went on")


def test_instance_and_mount_are_removed(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_ok.py").write_text("def test_ok():\n    pass\n")
    _wrap(tmp_path, "test_ok.py")
    events = (tmp_path / "bundle" / "events.jsonl").read_text()
    assert '"name":"signals","ok":true,"seen"' in events
    mounts = Path("/proc/self/mounts").read_text()
    assert "forensics-tracefs-" not in mounts
    for root in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        instances = Path(root) / "instances"
        if instances.is_dir():
            assert not [p for p in instances.iterdir() if p.name.startswith("forensics-")]


def test_a_killed_supervisor_leaves_no_instance_or_mount(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_slow.py").write_text(
        "import time\ndef test_slow():\n    open('started', 'w').close()\n    time.sleep(60)\n"
    )
    bundle = tmp_path / "bundle"
    argv = [sys.executable, "-m", "forensics", "wrap", "--bundle", str(bundle), "--"]
    proc = subprocess.Popen(
        [*argv, *PYTEST, "-p", "no:randomly", "test_slow.py"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        if (tmp_path / "started").exists():
            break
        time.sleep(0.1)
    run_id = json.loads((bundle / "manifest.json").read_text())["run_id"]
    proc.kill()
    proc.wait()
    name = f"forensics-{run_id}"
    for _ in range(100):  # the watchdog cleans up once it sees the supervisor gone
        mounts = Path("/proc/self/mounts").read_text()
        roots = [ln.split()[1] for ln in mounts.splitlines() if ln.split()[2:3] == ["tracefs"]]
        left = [root for root in roots if (Path(root) / "instances" / name).is_dir()]
        if name not in mounts and not left:
            break
        time.sleep(0.1)
    assert name not in Path("/proc/self/mounts").read_text()
    assert not left
