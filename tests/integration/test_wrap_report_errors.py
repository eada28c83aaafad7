"""`forensics report` on what is not a (whole) bundle: one-line errors or partial results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from forensics_testkit import PYTEST, WrapResult

pytestmark = pytest.mark.slow


def _report(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forensics", "report", str(path), "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, proc.stdout[-500:]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for word in words:
        assert word in lines[0]


def test_missing_path(tmp_path: Path) -> None:
    _one_line_error(_report(tmp_path / "nope"), "does not exist")


def test_empty_directory(tmp_path: Path) -> None:
    _one_line_error(_report(tmp_path), "not a forensics bundle")


def test_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    (tmp_path / "something.txt").write_text("hello\n")
    (tmp_path / "workers").mkdir()
    _one_line_error(_report(tmp_path), "not a forensics bundle")


def test_a_file_instead_of_a_directory(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("{}")
    _one_line_error(_report(tmp_path / "f"), "not a directory")


@pytest.fixture(scope="module")
def real(wrap_scenario: Callable[..., WrapResult]) -> WrapResult:
    return wrap_scenario("ie_crash", [*PYTEST, "-n", "2"], unwrapped=False)


def _corrupt(src: Path, dest: Path) -> Path:
    bundle = dest / "bundle"
    shutil.copytree(src, bundle)
    events = bundle / "events.jsonl"
    data = events.read_bytes()
    events.write_bytes(data[: len(data) // 2 + 7])  # cut mid-line
    workers = sorted((bundle / "workers").glob("*.jsonl"), key=lambda p: p.stat().st_size)
    for journal in workers[-2:]:
        raw = journal.read_bytes()
        journal.write_bytes(raw[: len(raw) - 13])  # cut the last line mid-way
    with open(workers[0], "ab") as fh:
        fh.write(b"\x00\xff\xfe garbage \x80\x81\n")
        fh.write(b'[{"kind": "test-start", "nodeid": "array.py::t"}]\n')
        fh.write(b'{"kind": "test-start", "nodeid": ' + b'"' + b"x" * (5 * 1024 * 1024) + b'"}\n')
        fh.write(b'{"kind": "test-start", "nodeid": 42, "t": "soon", "pid": "me"}\n')
        fh.write(b"\n\n{not json\n")
    with open(events, "ab") as fh:
        fh.write(b"\n" + bytes(range(256)) + b'\n[1, 2, 3]\n"a string"\nnull\n')
    return bundle


def test_corrupt_journals_give_partial_results(real: WrapResult, tmp_path: Path) -> None:
    bundle = _corrupt(real.bundle, tmp_path)
    proc = _report(bundle)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    triage: dict[str, Any] = json.loads(proc.stdout)
    assert triage["schema"] == "forensics.triage/1"
    # The crash is still found from what survived (the fault dump and the breadcrumbs).
    assert "test_ie.py::test_segv" in {i["test"] for i in triage["incidents"]}
    assert not any(i["test"] in ("array.py::t", "x" * 10) for i in triage["incidents"])


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_corrupt_bundle_renders_in_every_format(real: WrapResult, tmp_path: Path, fmt: str) -> None:
    bundle = _corrupt(real.bundle, tmp_path)
    out = tmp_path / f"report.{fmt}"
    proc = subprocess.run(
        [sys.executable, "-m", "forensics", "report", str(bundle), "--format", fmt, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert out.stat().st_size > 0


def test_manifest_and_events_gone_is_a_one_line_error(real: WrapResult, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(real.bundle, bundle)
    (bundle / "manifest.json").unlink()
    (bundle / "events.jsonl").unlink()
    _one_line_error(_report(bundle), "not a forensics bundle")


def test_corrupt_manifest_gives_partial_results(real: WrapResult, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(real.bundle, bundle)
    (bundle / "manifest.json").write_bytes(b'["not", "an", "object"]')
    proc = _report(bundle)
    assert proc.returncode == 0, proc.stderr
    triage = json.loads(proc.stdout)
    assert triage["run"]["command"] is None
    assert "test_ie.py::test_segv" in {i["test"] for i in triage["incidents"]}
