"""The scanner's rule table: guards, declining handlers, and lines parsed inside a dump."""

from __future__ import annotations

from forensics.analyze.logs import scan_lines
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.dispatch import ALWAYS, Handler, Rule, dispatch, has, rule, starts


def _recorder(name: str, took: list[str], takes: bool) -> Handler:
    def handle(line: Line) -> bool:
        took.append(name)
        return takes

    return handle


def _line(text: str) -> Line:
    return Line(text, None, 1, text, None)


def test_first_taking_rule_stops_the_line_and_declining_ones_pass_it_on() -> None:
    took: list[str] = []
    table: list[Rule] = [
        rule(starts("FAILED", "ERROR"), _recorder("starts", took, takes=False)),
        rule(has("node down"), _recorder("node-down", took, takes=True)),
        rule(has("crashed worker", "crashed slave"), _recorder("crashed", took, takes=True)),
        rule(ALWAYS, _recorder("always", took, takes=True)),
    ]
    dispatch(table, _line("ERROR at setup: [gw1] node down: Not properly terminated"))
    assert took == ["starts", "node-down"]

    took.clear()
    dispatch(table, _line("replacing crashed slave gw2"))  # the second word of an any-of guard
    assert took == ["crashed"]

    took.clear()
    dispatch(table, _line("xERROR node-down-ish"))  # neither the prefix nor the phrase
    assert took == ["always"]


def test_a_node_down_inside_a_fault_dump_is_dated_by_its_raw_line() -> None:
    stamp = "2024-05-01T12:00:{:02d}.0000000Z "
    lines = [
        stamp.format(0) + "[gw0] node down: Not properly terminated",  # not this one
        stamp.format(1) + "Fatal Python error: Segmentation fault",
        stamp.format(2) + "",
        stamp.format(3) + "Current thread 0x00007f (most recent call first):",
        stamp.format(4) + '  File "/src/pkg/mod.py", line 7 in crash',
        stamp.format(30) + "[gw1] node down: Not properly terminated",
        stamp.format(31) + '  File "/src/tests/test_x.py", line 3 in test_crash',
    ]
    scan = scan_lines(lines, "ci.log")
    (fault,) = scan.faults
    assert fault.signal == "SIGSEGV"
    assert [f.name for f in fault.stacks[0].frames] == ["crash", "test_crash"]  # still one dump
    first, down = scan.node_downs
    assert down.worker == "gw1" and down.time is not None and first.time is not None
    assert down.time - first.time == 30


def test_a_kernel_fault_line_that_also_reads_live_log_is_a_kernel_fault() -> None:
    line = "[12.5] python3[4242]: segfault at 0 ip 00007f sp 00007ff error 4 in libfoo.so[7f+1000]"
    scan = scan_lines([line + " live log"], "dmesg.log")
    assert [f.excerpt for f in scan.kernel_faults] == [line + " live log"]
