"""`wrap --force` replaces only a bundle, and readers of a stranger's bundle stay bounded."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from forensics_testkit import clean_env, run

WRAP = [sys.executable, "-m", "forensics", "wrap"]
TRUE = [sys.executable, "-c", "pass"]


def _wrap_force(bundle: Path, cwd: Path) -> tuple[int, str]:
    proc = run([*WRAP, "--bundle", str(bundle), "--force", "--", *TRUE], cwd, env=clean_env())
    return proc.returncode, proc.stderr


def test_force_refuses_a_directory_that_is_not_a_bundle(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    (victim / "src").mkdir(parents=True)
    (victim / "src" / "important.py").write_text("keep me\n")
    (victim / "manifest.json").write_text('{"not": "ours"}\n')
    status, err = _wrap_force(victim, tmp_path)
    assert status == 1, err
    assert "not a forensics bundle" in err and err.count("\n") == 1
    assert (victim / "src" / "important.py").read_text() == "keep me\n"
    assert (victim / "manifest.json").read_text() == '{"not": "ours"}\n'


def test_force_in_a_checkout_keeps_the_checkout(tmp_path: Path) -> None:
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    status, _err = _wrap_force(Path("."), checkout)
    assert status == 1
    assert (checkout / ".git" / "HEAD").is_file()


def test_force_replaces_an_earlier_bundle_and_only_its_files(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    assert run([*WRAP, "--bundle", str(bundle), "--", *TRUE], tmp_path).returncode == 0
    # Things that are not bundle files, and a planted link that would redirect the agents.
    (bundle / "notes.txt").write_text("mine\n")
    (bundle / "faults" / "keep.txt").write_text("mine too\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "1.jsonl").write_text("precious\n")
    (bundle / "workers").rename(tmp_path / "old-workers")
    (bundle / "workers").symlink_to(elsewhere)
    status, err = _wrap_force(bundle, tmp_path)
    assert status == 0, err
    assert (bundle / "notes.txt").read_text() == "mine\n"
    assert (bundle / "faults" / "keep.txt").read_text() == "mine too\n"
    assert (elsewhere / "1.jsonl").read_text() == "precious\n"
    assert (bundle / "workers").is_dir() and not (bundle / "workers").is_symlink()
    assert json.loads((bundle / "manifest.json").read_text())["schema"] == "forensics.bundle/1"


def test_force_reuses_an_empty_directory(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    status, err = _wrap_force(empty, tmp_path)
    assert status == 0, err
    assert (empty / "manifest.json").is_file()


def _hostile_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "hostile"
    (bundle / "workers").mkdir(parents=True)
    (bundle / "manifest.json").write_text(
        json.dumps({"schema": "forensics.bundle/1", "command": ["pytest"], "cwd": str(tmp_path)})
    )
    return bundle


# A reader that loads a whole hostile line would use all memory of the machine: bound it.
_LIMITED = (
    "import resource, runpy, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
    "sys.argv[0] = 'forensics'; runpy.run_module('forensics', run_name='__main__')"
)


def _report(bundle: Path, cwd: Path) -> tuple[int, str, str]:
    proc = run(
        [sys.executable, "-c", _LIMITED, "report", str(bundle), "--format", "json"],
        cwd,
        timeout=120,
        env=clean_env(),
    )
    return proc.returncode, proc.stdout, proc.stderr


def test_report_of_events_linked_to_dev_zero_is_bounded(tmp_path: Path) -> None:
    bundle = _hostile_bundle(tmp_path)
    (bundle / "events.jsonl").symlink_to("/dev/zero")
    (bundle / "workers" / "7.jsonl").symlink_to("/dev/zero")
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"kind": "test-start", "nodeid": "reader-only.py::t", "t": 1}\n')
    (bundle / "workers" / "8.jsonl").symlink_to(secret)
    # A linked folder is not read either.
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "9.log").write_text("Fatal Python error: from-a-foreign-dir\n")
    (bundle / "faults").symlink_to(foreign)
    status, out, err = _report(bundle, tmp_path)
    assert status == 0, err[-2000:]
    assert "MemoryError" not in err and "Traceback" not in err
    triage = json.loads(out)
    assert "reader-only.py" not in out and "from-a-foreign-dir" not in out
    assert any("events.jsonl" in note for note in triage["notes"])


def test_report_skips_a_huge_line_without_reading_it_whole(tmp_path: Path) -> None:
    bundle = _hostile_bundle(tmp_path)
    line = json.dumps({"t": 1.0, "kind": "proc-start", "pid": 5, "ppid": 1, "argv": ["x"]})
    with open(bundle / "events.jsonl", "wb") as fh:
        fh.write(b'{"t": 0, "kind": "run-start", "pad": "')
        fh.seek(1 << 30, os.SEEK_CUR)  # a sparse GiB: costs no disk
        fh.write(b'"}\n' + line.encode() + b"\n")
    # Reading the GiB line whole does not fit in the 300 MiB this reader is given.
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (300 << 20, 300 << 20))"
    code = (
        f"{limit}\nimport json, sys\nfrom forensics.bundle import read_jsonl\n"
        "print(json.dumps(list(read_jsonl(__import__('pathlib').Path(sys.argv[1])))))"
    )
    proc = run([sys.executable, "-c", code, str(bundle / "events.jsonl")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == [json.loads(line)]


def test_read_jsonl_does_not_block_on_a_fifo(tmp_path: Path) -> None:
    bundle = _hostile_bundle(tmp_path)
    os.mkfifo(bundle / "events.jsonl")
    status, _out, err = _report(bundle, tmp_path)
    assert status == 0, err[-2000:]
