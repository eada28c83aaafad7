"""`forensics analyze` on JUnit XML in UTF-16: tests counted, DOCTYPE refused in one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from forensics_testkit import clean_env, run

ANALYZE = [sys.executable, "-m", "forensics", "analyze"]


def test_utf16_doctype_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.xml"
    evil.write_bytes(
        (
            '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE t [<!ENTITY x SYSTEM '
            '"file:///etc/hostname">]><testsuite><testcase name="a">'
            '<failure message="&x;"/></testcase></testsuite>'
        ).encode("utf-16")
    )
    proc = run([*ANALYZE, str(evil), "--format", "json"], tmp_path, env=clean_env())
    assert proc.returncode == 1
    assert "DOCTYPE" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_utf16_report_counts_its_tests(tmp_path: Path) -> None:
    report = tmp_path / "junit16.xml"
    report.write_bytes(
        (
            '<?xml version="1.0" encoding="UTF-16"?><testsuite tests="2">'
            '<testcase classname="tests.test_m" name="test_ok"/>'
            '<testcase classname="tests.test_m" name="test_bad">'
            '<failure message="AssertionError: no"/></testcase></testsuite>'
        ).encode("utf-16")
    )
    proc = run([*ANALYZE, str(report), "--format", "json"], tmp_path, env=clean_env())
    assert proc.returncode == 0, proc.stderr
    tests = json.loads(proc.stdout)["run"]["tests"]
    assert (tests["passed"], tests["failed"]) == (1, 1)
