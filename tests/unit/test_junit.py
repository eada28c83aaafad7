"""JUnit XML: failures, crashed workers and timeouts; hostile XML refused."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs
from forensics.analyze.logs.junit import looks_like_junit, scan_junit
from forensics.errors import InputError

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"


def test_pytest_junit_from_an_xdist_run() -> None:
    triage = analyze_logs([str(LOGS / "junit_xdist.xml")])
    causes = {i.test: i.cause for i in triage.incidents}
    assert causes["test_crash.py::test_abort"] == "native-crash"
    assert causes["test_crash.py::test_hang"] == "hang"
    assert causes["test_crash.py::test_queue_closed"] == "python-exception"
    crashed = {i.test: i.worker for i in triage.incidents if i.cause == "native-crash"}
    assert crashed["test_crash.py::test_segv"] == "gw1"
    tests = triage.run.tests
    assert (tests.passed, tests.failed, tests.error) == (3, 3, 4)


def test_classname_becomes_a_node_id() -> None:
    xml = (
        b'<?xml version="1.0"?><testsuite tests="1">'
        b'<testcase classname="tests.unit.test_mod.TestThing" name="test_x[1]">'
        b'<failure message="AssertionError: boom">trace</failure></testcase></testsuite>'
    )
    scan = scan_junit(io.BytesIO(xml), "j.xml")
    assert [f.test for f in scan.failures] == ["tests/unit/test_mod.py::TestThing::test_x[1]"]
    assert scan.failures[0].exc_type == "AssertionError"


@pytest.mark.parametrize(
    "xml",
    [
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        b"<testsuite><testcase name='a'><failure message='&lol2;'/></testcase></testsuite>",
        b'<?xml version="1.0"?><!DOCTYPE t SYSTEM "file:///etc/passwd"><testsuite/>',
    ],
)
def test_doctype_and_entities_refused(xml: bytes) -> None:
    with pytest.raises(InputError, match="DOCTYPE"):
        scan_junit(io.BytesIO(xml), "evil.xml")


def test_malformed_xml_is_a_note_not_a_traceback() -> None:
    xml = b'<?xml version="1.0"?><testsuite><testcase name="a"><failure message="x"'
    scan = scan_junit(io.BytesIO(xml), "cut.xml")
    assert scan.notes and "malformed" in scan.notes[0]


def test_detection() -> None:
    assert looks_like_junit(b'<?xml version="1.0" encoding="utf-8"?><testsuites>')
    assert looks_like_junit(b"<testsuite name='x'>")
    assert not looks_like_junit(b"<?xml version='1.0'?><html>")
    assert not looks_like_junit(b"=== test session starts ===")


_DOCTYPE_XML = (
    '<?xml version="1.0" encoding="{enc}"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;">]>'
    "<testsuite><testcase name='a'><failure message='&lol2;'/></testcase></testsuite>"
)


@pytest.mark.parametrize(
    ("codec", "declared"),
    [
        ("utf-16", "UTF-16"),  # with a byte order mark
        ("utf-16-le", "UTF-16"),
        ("utf-16-be", "UTF-16"),
        ("utf-32", "UTF-32"),
        ("utf-32-be", "UTF-32"),
    ],
)
def test_doctype_in_a_wide_encoding_is_refused(codec: str, declared: str) -> None:
    xml = _DOCTYPE_XML.format(enc=declared).encode(codec)
    assert looks_like_junit(xml[:4096])
    with pytest.raises(InputError, match="DOCTYPE"):
        scan_junit(io.BytesIO(xml), "evil16.xml")


def test_a_utf16_report_yields_its_tests() -> None:
    xml = (
        '<?xml version="1.0" encoding="UTF-16"?><testsuite tests="2">'
        '<testcase classname="t" name="test_ok"/>'
        '<testcase classname="t" name="test_bad"><failure message="AssertionError: no"/>'
        "</testcase></testsuite>"
    ).encode("utf-16")
    assert looks_like_junit(xml)
    scan = scan_junit(io.BytesIO(xml), "wide.xml")
    assert (scan.summary.counts.passed, scan.summary.counts.failed) == (1, 1), scan.notes
    assert [f.test for f in scan.failures] == ["t.py::test_bad"]
