"""The wrapped command and py-spy start without a ``preexec_fn`` in the threaded supervisor,
and the command still gets its own process group, the run's cgroup and death with forensics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import clean_env, run

from forensics.collect import pyspy
from forensics.supervise import launch

WRAP = [sys.executable, "-m", "forensics", "wrap", "--bundle"]
PROBE = """
import ctypes, os
value = ctypes.c_int()
ctypes.CDLL(None).prctl(2, ctypes.byref(value))  # PR_GET_PDEATHSIG
with open("/proc/self/cgroup") as fh:
    cgroups = fh.read()
import signal
print("PROBE", os.getpgrp() == os.getpid(), value.value, "forensics-" in cgroups,
      signal.getsignal(signal.SIGPIPE) == signal.SIG_DFL or "default-at-exec")
"""


def test_the_command_is_set_up_as_before(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    proc = run(
        [*WRAP, str(bundle), "--", sys.executable, "-c", PROBE],
        tmp_path,
        env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE"))
    own_group, deathsig, in_cgroup, _ = line.split()[1:]
    assert own_group == "True"
    assert int(deathsig) == 9
    cgroup_note = [
        e
        for e in map(json.loads, (bundle / "events.jsonl").read_text().splitlines())
        if e.get("kind") == "collector" and e.get("name") == "cgroup" and e.get("ok") is False
    ]
    if not cgroup_note:  # the run had its cgroup: the command is in it from its first instruction
        assert in_cgroup == "True"


def test_the_command_inherits_no_ignored_signal_from_the_helper(tmp_path: Path) -> None:
    # The helper is a Python, which ignores SIGPIPE and SIGXFSZ; an ignored signal stays
    # ignored across exec, and `yes | head` would then never end by SIGPIPE.
    proc = run(
        [*WRAP, str(tmp_path / "b"), "--", "grep", "SigIgn", "/proc/self/status"],
        tmp_path,
        env=clean_env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    ignored = int(proc.stdout.split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE ignored"
    assert not ignored & (1 << (25 - 1)), "SIGXFSZ ignored"


def test_no_preexec_fn_reaches_popen(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []
    real = subprocess.Popen

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    child = launch.start_child([sys.executable, "-c", "pass"], dict(os.environ))
    child.communicate()
    spawned = pyspy._spawn(["true"])
    spawned.communicate()
    assert len(seen) == 2
    assert all(kw.get("preexec_fn") is None for kw in seen)


def test_a_command_that_cannot_run_raises_like_popen(tmp_path: Path) -> None:
    not_executable = tmp_path / "script.py"
    not_executable.write_text("print(1)\n")
    for argv in (["no-such-command-for-forensics"], [str(not_executable)]):
        with pytest.raises(OSError) as popen_error:
            subprocess.Popen(argv)
        with pytest.raises(OSError) as ours:
            launch.start_child(argv, dict(os.environ))
        assert (type(ours.value), ours.value.errno) == (
            type(popen_error.value),
            popen_error.value.errno,
        )
