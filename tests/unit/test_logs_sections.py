"""What a failure section's own lines tell when its title or its "E" lines do not.

Each case is an entry of the labelled corpus (tests/corpus/labels.json gives its thread), read
from tests/corpus/logs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from forensics.analyze.logs import analyze_logs, scan_lines
from forensics.analyze.logs.correlate import correlate
from forensics.model import Incident

CORPUS = Path(__file__).parent.parent / "corpus" / "logs"


def _primary(name: str) -> Incident:
    incidents = analyze_logs([str(CORPUS / name)]).incidents
    assert incidents, f"no incident for {name}"
    return incidents[0]


def test_a_frame_that_raises_names_the_exception_of_a_section_without_e_lines() -> None:
    # The excerpt ends at the innermost frame's ">     raise RuntimeError('Event loop is closed')".
    incident = _primary("028_asyncio_event_loop_closed.log")
    assert incident.cause == "python-exception"
    assert "RuntimeError: Event loop is closed" in incident.summary


@pytest.mark.parametrize(
    ("name", "cause", "test"),
    [
        # "ERROR at setup of test_...[...]", then "message_ix_models/tests/tools/test_wb.py:26: "
        (
            "032_xdist_fixture_setup_http_429.log",
            "infrastructure",
            "message_ix_models/tests/tools/test_wb.py::test_assign_income_groups[R12-population-0]",
        ),
        # The child's abort printed in the section after "tests/test_multiprocess.py:26: ...".
        (
            "044_objc_fork_safety_child_sigabrt.log",
            "native-crash",
            "tests/test_multiprocess.py::test_multiprocess_get",
        ),
        # An excerpt that starts at an "E" line: "def test_internet_access()" and
        # "test_strict_with_decorator.py:9:" after it, with no section title between.
        (
            "039_sandbox_no_network_gaierror.log",
            "infrastructure",
            "test_strict_with_decorator.py::test_internet_access",
        ),
    ],
)
def test_the_section_location_line_names_the_test_file(name: str, cause: str, test: str) -> None:
    incident = _primary(name)
    assert (incident.cause, incident.test) == (cause, test)


def test_a_bare_gaierror_entry_line_is_a_name_resolution_failure() -> None:
    # "socket.py:955: gaierror" ends a section whose E lines the excerpt lost.
    incident = _primary("038_dns_failure_device_tests.log")
    assert incident.cause == "infrastructure"
    assert "gaierror" in incident.summary


def test_a_location_line_outside_test_files_names_no_test() -> None:
    lines = [
        "___________________ test_b ___________________",
        "    def test_b():",
        ">       helper()",
        "src/pkg/helper.py:3: ",
        ">       raise ValueError('bad')",
        "E       ValueError: bad",
        "src/pkg/helper.py:9: ValueError",
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.cause, incident.test) == ("python-exception", "test_b")
    assert "ValueError: bad" in incident.summary


def test_the_next_section_title_ends_the_window() -> None:
    lines = [
        "E       ValueError: bad",
        "___________________ test_c ___________________",
        "    def test_other():",
        "tests/test_c.py:3: ",
    ]
    scan = scan_lines(lines, "x.log")
    assert not any(f.test == "tests/test_c.py::test_other" for f in scan.failures)


def test_the_failed_line_before_replacing_a_worker_names_its_crashed_test() -> None:
    # xdist reports the item a dead worker ran as FAILED on it, then replaces the worker; here
    # behind a log collector's "<time>  tensorflow<TAB>" prefix, with the node-down line cut.
    incident = _primary("025_xdist_oom_internalerror_jenkins.log")
    assert (incident.worker, incident.test) == (
        "gw13",
        "layerwise/Mistral7b/test_model_layers_0.py::test_model_layers_0",
    )


def test_a_failed_line_of_another_worker_names_no_crashed_test() -> None:
    lines = [
        "[gw2] [ 70%] FAILED tests/test_a.py::test_other",
        "replacing crashed worker gw13",
    ]
    (incident,) = correlate(scan_lines(lines, "x.log"))
    assert (incident.worker, incident.test) == ("gw13", None)


def test_a_section_title_whose_parameter_id_holds_a_space_still_names_the_test() -> None:
    # "____ ERROR at teardown of test_get_mimetype_from_filename_raises_error[empty string] ____"
    # and its "E   RuntimeError: Event loop is closed", with no summary after them.
    incident = _primary("078_asyncio_finalizer_event_loop_closed.log")
    assert incident.cause == "python-exception"
    assert incident.test == "test_get_mimetype_from_filename_raises_error[empty string]"
    assert "RuntimeError: Event loop is closed" in incident.summary
    assert incident.phase == "teardown"


def test_a_long_line_of_underscores_is_no_section_title() -> None:
    lines = ["___ " + "x " * 400 + "___", "E   RuntimeError: boom"]
    scan = scan_lines(lines, "x.log")
    assert [i.test for i in correlate(scan)] != ["x " * 400]
