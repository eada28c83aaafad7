"""`forensics analyze` end to end: real pytest-xdist output in, triage out, errors one line."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "forensics", "analyze", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def _json(proc: subprocess.CompletedProcess[bytes]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr.decode()
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def test_json_contract() -> None:
    data = _json(_run(str(LOGS / "story001_dynamo_sigabrt.log"), "--format", "json"))
    assert data["schema"] == "forensics.triage/1"
    assert data["source"] == {"kind": "log", "paths": [str(LOGS / "story001_dynamo_sigabrt.log")]}
    first = data["incidents"][0]
    assert (first["id"], first["cause"], first["signal"], first["worker"]) == (
        "I1",
        "native-crash",
        "SIGABRT",
        "gw6",
    )
    lines = (LOGS / "story001_dynamo_sigabrt.log").read_text().splitlines()
    fatal_line = next(n for n, line in enumerate(lines, 1) if "Fatal Python error" in line)
    assert first["evidence"][0]["source"].endswith(f"story001_dynamo_sigabrt.log:{fatal_line}")
    assert data["run"]["tests"] == {"passed": 47, "failed": 1, "error": 0, "skipped": 0}
    assert data["signatures"]


def test_stdin_gzip_and_output_file(tmp_path: Path) -> None:
    raw = (LOGS / "story000_robin_keyerror_714.log").read_bytes()
    from_stdin = _json(_run("-", "--format", "json", stdin=gzip.compress(raw)))
    assert [i["worker"] for i in from_stdin["incidents"]] == ["gw8", "gw10", "gw11"]
    assert from_stdin["incidents"][2]["secondary"][0]["ref"] == "pytest-dev/pytest-xdist#714"
    out = tmp_path / "triage.json"
    proc = _run(str(LOGS / "story000_robin_keyerror_714.log"), "--format", "json", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == b""
    assert json.loads(out.read_text())["incidents"][0]["cause"] == "native-crash"


def test_help_examples_run(tmp_path: Path) -> None:
    # The examples in `forensics analyze --help`, as printed.
    (tmp_path / "junit.xml").write_bytes((LOGS / "junit_xdist.xml").read_bytes())
    (tmp_path / "ci.log").write_bytes((LOGS / "gha_xdist_crashes.log").read_bytes())
    for n in (1, 2):
        raw = (LOGS / f"story003_dispatcherd_run{n}.log").read_bytes()
        (tmp_path / f"job-{n}.log.gz").write_bytes(gzip.compress(raw))
    shell = [
        "forensics analyze ci.log",
        "forensics analyze job-*.log.gz --format json",
        "cat ci.log | forensics analyze -",
        "forensics analyze junit.xml --format markdown -o issue.md",
    ]
    for line in shell:
        command = line.replace("forensics", f"{sys.executable} -m forensics", 1)
        command = command.replace("| forensics", f"| {sys.executable} -m forensics")
        proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, timeout=120)
        assert proc.returncode == 0, (line, proc.stderr)
    assert "test_queue_closed" in (tmp_path / "issue.md").read_text()


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_other_formats_render(fmt: str) -> None:
    proc = _run(str(LOGS / "story001_dynamo_sigabrt.log"), "--format", fmt)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"test_kv_push_router_bindings" in proc.stdout


def test_errors_are_one_line(tmp_path: Path) -> None:
    for args, code in (
        ([str(tmp_path / "missing.log")], 1),
        ([str(tmp_path)], 1),
        ([], 2),
        ([str(LOGS / "story001_hf_infra.log"), "--format", "pdf"], 2),
    ):
        proc = _run(*args)
        assert proc.returncode == code, (args, proc.stderr)
        assert b"Traceback" not in proc.stderr
        if code == 1:
            assert len(proc.stderr.decode().strip().splitlines()) == 1


def test_odd_inputs_give_a_result(tmp_path: Path) -> None:
    cases = {
        "empty.log": b"",
        "binary.bin": bytes(range(256)) * 4000,
        "long.log": b"a" * (5 << 20) + b"\nFatal Python error: Aborted\n",
        "bad-utf8.log": b"\xff\xfe Fatal Python error: Segmentation fault\n\xc3\x28\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        data_out = _json(_run(str(path), "--format", "json"))
        assert data_out["source"]["kind"] == "log", name


@pytest.mark.slow
def test_real_xdist_crash_run(tmp_path: Path) -> None:
    (tmp_path / "test_boom.py").write_text(
        textwrap.dedent(
            """
            import ctypes, os

            def test_fine():
                pass

            def test_segv():
                ctypes.string_at(0)

            def test_abort():
                os.abort()
            """
        )
    )
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", "-v", "test_boom.py"],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
        check=False,
    )
    log = tmp_path / "ci.log"
    log.write_bytes(run.stdout + run.stderr)
    data = _json(_run(str(log), "--format", "json"))
    assert b"Fatal Python error" in log.read_bytes(), log.read_text()[-3000:]
    crashes = [(i["test"], i["signal"]) for i in data["incidents"] if i["cause"] == "native-crash"]
    # Two workers dying at once splice their dumps, down to single tokens, so which dump is
    # whose can be a guess; what must hold is one incident per dead worker, with its test.
    assert sorted(test for test, _ in crashes) == [
        "test_boom.py::test_abort",
        "test_boom.py::test_segv",
    ]
    assert {sig for _, sig in crashes} <= {"SIGSEGV", "SIGABRT", None}
    assert any(sig for _, sig in crashes)
