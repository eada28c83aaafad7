"""The words of a death a shell, a CI runner or a runtime reports, and of the test it ended.

The vocabulary :mod:`.deaths` reads with: a shell's signal words (bash, fish, zsh), cargo's
``process didn't exit successfully``, Windows status codes, C++/Objective-C/Rust abort lines,
a macOS crash report's headers and frames, and the progress lines that name the running test
(``pytest -v``'s node id, the dots line of a file, unittest's ``name (class)``).
"""

from __future__ import annotations

import re

# --- the shell's and the runner's report -----------------------------------------------------
SHELL_WORDS = {
    "Segmentation fault": "SIGSEGV",
    "Aborted": "SIGABRT",
    "Bus error": "SIGBUS",
    "Illegal instruction": "SIGILL",
    "Floating point exception": "SIGFPE",
    "Killed": "SIGKILL",
    "Terminated": "SIGTERM",
    "Abort trap": "SIGABRT",
}
# "Killed", "bash: line 1:  7667 Aborted   python -m pytest", make's "make: *** [Makefile:40:
# pytest] Killed", macOS bash's "Segmentation fault: 11", and the word glued to the progress it
# cut short: "tests/test_linalg.py ......Aborted (core dumped)", "tests/x.py::test_y[1]
# Segmentation fault (core dumped)".
# The word and what may follow it to the end of the line; what comes before is checked apart
# (SHELL_BY), so no pattern here backtracks over a long line.
SHELL_DEATH = re.compile(
    r"(?P<what>Segmentation fault|Aborted|Abort trap|Bus error|Illegal instruction|"
    r"Floating point exception|Killed|Terminated)(?::? \d+)?(?: +\(core dumped\))?"
    r"(?:\s{2,}(?P<cmd>.*))?$"
)
# Who printed it, at the end of the text before the word: bash's "<script>: line 1:  3160 ",
# make's "make: *** [Makefile:40: pytest] ", a job-control "  3160 ".
SHELL_BY = re.compile(
    r"(?:\S{1,500}: line \d{1,9}: +\d{1,9} +|make(?:\[\d{1,9}\])?: \*\*\* \[[^\]]{0,500}\] "
    r"|^\s*\d{1,9} +)$"
)
# The progress a shell's word may be glued to: "tests/test_linalg.py ......", "....sss".
DOTS_BEFORE = re.compile(r"^(?:[\w./\\-]+\.py ?)?[.FEsxXp]+$")
# A command that runs the tests, named after a shell's word ("Killed   python -m pytest"): a
# runner, a test script or binary, or python running a script (not "-m" some other module).
TEST_COMMAND = re.compile(
    r"(?i)py\.?test|unittest|nosetests|nose2|testr\b"
    r"|\b(?:tox|nox|make|cargo|ctest|meson|ninja|trial|hatch|runtests?)\b"
    r"|(?<![a-z])(?:tests?|testing|testsuite|check)(?![a-z])"
)
PYTHON_COMMAND = re.compile(r"^(?:\S*/)?python[\d.]*(?:\.exe)?(?:\s|$)")
PYTHON_MODULE = re.compile(r"\s-m\s*\S")
# fish: "fish: 'pytest -vs test_pybind.py' terminated by signal SIGABRT (Abort)"
FISH_COMMAND = re.compile(r"fish: '(?P<cmd>[^']{0,500})' $")
# fish: "fish: 'pytest -vs x.py' terminated by signal SIGABRT (Abort)"; zsh: "[1] 47787 abort"
# (after the progress it cut short); meson: "killed by signal 6 SIGABRT".
BY_SIGNAL = re.compile(
    r"(?:terminated|killed) by signal (?:\d+ )?(?P<sig>SIG[A-Z]+)"
    r"|\[\d+\] +\d+ (?P<zsh>abort|segmentation fault|bus error|killed)\s"
)
ZSH_WORDS = {
    "abort": "SIGABRT",
    "segmentation fault": "SIGSEGV",
    "bus error": "SIGBUS",
    "killed": "SIGKILL",
}
# cargo: "process didn't exit successfully: `…` (signal: 11, SIGSEGV: invalid memory reference)"
# or "(exit status: 0xc0000005, STATUS_ACCESS_VIOLATION)".
CARGO = re.compile(
    r"didn't exit successfully: [^(]*\((?:signal: \d+, (?P<sig>SIG[A-Z]+)"
    r"|exit (?:status|code): (?P<code>0x[0-9a-fA-F]+|-?\d+))"
)
# Windows NTSTATUS codes a crashed process exits with, in the three spellings CI prints.
WINDOWS_STATUS = {
    0xC0000005: ("SIGSEGV", "access violation"),
    0xC00000FD: ("SIGSEGV", "stack overflow"),
    0xC0000409: ("SIGABRT", "stack buffer overrun (fail-fast)"),
    0xC000001D: ("SIGILL", "illegal instruction"),
    0xC0000094: ("SIGFPE", "integer divide by zero"),
    0xC0000374: ("SIGABRT", "heap corruption"),
    0xE06D7363: ("SIGABRT", "uncaught C++ exception"),
}
WINDOWS_CODE = re.compile(
    r"(?<![\w-])(?:0x(?P<hex>[cC]0000(?:005|0[fF][dD]|01[dD]|094|409|374)|[eE]06[dD]7363)"
    r"|(?P<dec>-1073741819|-1073741571|-1073740791|-1073741795|-1073741676|-1073740940"
    r"|-529697949|3221225477|3221225725|3221226505|3221225501|3221225620|3221226356"
    r"|3765269347))\b"
)
# What makes a number an exit status rather than, say, a parametrized test's id: the words
# right before it ("exited with -1073741819", "exit code 0xc0000374", "returned 3221225477").
WINDOWS_CONTEXT = re.compile(
    r"(?i)(?:exit(?:ed)? (?:code|status|value)|exited with(?: code| status)?|returned"
    r"|return code|status code)[\s:=]{0,3}$"
)

# --- what the runtime said ---------------------------------------------------------------------
# libc++abi.dylib: terminating with uncaught exception of type X: message
# libc++abi: terminating due to uncaught exception of type X: message
CXX_UNCAUGHT = re.compile(
    r"libc\+\+abi(?:\.dylib)?: terminating (?:with|due to) uncaught exception of type "
    r"(?P<type>[^:\s]+(?:::[^:\s]+)*)(?::\s*(?P<msg>.*))?$"
)
NS_UNCAUGHT = re.compile(
    r"Terminating app due to uncaught exception '(?P<type>[^']+)'(?:, reason: '(?P<why>.*)')?"
)
OBJC_FORK = re.compile(
    r"objc\[(?P<pid>\d+)\]: \+\[(?P<cls>\S+) initialize\] may have been in progress in another"
    r" thread when fork\(\) was called"
)
CRASH_EXCEPTION = re.compile(r"^Exception Type: +(?P<type>EXC_\w+) +\((?P<sig>SIG[A-Z]+)\)")
CRASHED_THREAD = re.compile(r"^(?:Thread \d+ Crashed::?|\*\*\* First throw call stack:)")
# "2   QtCore   0x000000010ec02ad9 qt_message_fatal(...) + 9"
MAC_FRAME = re.compile(r"^\s*\d+\s+(?P<lib>\S+)\s+0x[0-9a-fA-F]+ (?P<sym>.+?)(?: \+ \d+)?$")
RUST_ABORTING = re.compile(
    r"thread panicked while panicking|panic in a function that cannot unwind"
    r"|panic in a destructor during cleanup"
)
# Apple's own libraries: the first frame past them is the code that crashed.
SYSTEM_LIBRARIES = re.compile(
    r"^(?:libsystem_\w+\.dylib|libc\+\+(?:abi)?(?:\.\d+)?\.dylib|libobjc\.A\.dylib|dyld|"
    r"libdyld\.dylib|CoreFoundation|Foundation|AppKit|HIToolbox|libdispatch\.dylib|"
    r"com\.apple\.\S+|\?\?\?)$"
)

# --- the test that was running -----------------------------------------------------------------
# pytest -v before the result: "tests/x.py::test_y " (xdist's "[gw0]" is stripped already).
VERBOSE_RUNNING = re.compile(r"^(?P<test>[\w./\\-]+\.py::\S+)\s*$")
# pytest < 3 -v: "test/test_web.py:45: test_basic_socket"
OLD_VERBOSE_RUNNING = re.compile(r"^(?P<file>[\w./\\-]+\.py):\d+: (?P<name>\w+)\s*$")
# The dots line a death cut short: "tests/test_linalg.py ....." (the file, not the test).
DOTS_RUNNING = re.compile(r"^(?P<file>[\w./\\-]+\.py)(?: [.FEsxXp]*)?\s*$")
# unittest -v: "test_cpu (test_utils.TestFFI) ... "
UNITTEST_RUNNING = re.compile(r"^(?P<name>\w+) \((?P<cls>[\w.]+)\)(?: \.\.\.)?\s*$")
# pytest -v's result after a test's output ("PASSED    [ 33%]"), or with its node id; not
# the short summary's "PASSED path::test" (-rA), which comes after every test ran.
RESULT = re.compile(
    r"^(?:(?P<test>[\w./\\-]+\.py::\S+) )?(?P<word>PASSED|XPASS|XFAIL|SKIPPED|FAILED|ERROR)"
    r"(?: \([^)]{0,300}\))?(?:\s+\[ *\d+%\])?\s*$"
)
SURVIVED = ("PASSED", "XPASS", "XFAIL", "SKIPPED")


def running_test(before: str) -> str | None:
    """The test a progress text announces with no result yet (None when it names none)."""
    text = before.rstrip("\r\n")
    match = VERBOSE_RUNNING.match(text)
    if match:
        return match.group("test")
    old = OLD_VERBOSE_RUNNING.match(text)
    if old:
        return f"{old.group('file')}::{old.group('name')}"
    dots = DOTS_RUNNING.match(text)
    if dots:
        return dots.group("file")
    unit = UNITTEST_RUNNING.match(text)
    if unit:
        return f"{unit.group('cls')}.{unit.group('name')}"
    return None


def runs_tests(cmd: str) -> bool:
    """Whether a command a shell names with a death runs the tests (or may: a python script)."""
    cmd = cmd.strip().removeprefix("(core dumped)").strip()
    if TEST_COMMAND.search(cmd) or "$" in cmd or "`" in cmd:
        return True  # a runner, or a variable the log does not expand ("$CMD_P")
    return bool(PYTHON_COMMAND.match(cmd)) and not PYTHON_MODULE.search(cmd)


def windows_status(text: str, context: bool = False) -> tuple[int, str, str] | None:
    """(exit code as printed, signal equivalent, name) of a Windows crash status in *text*.

    With *context*, only a code the words before it call an exit status.
    """
    match = WINDOWS_CODE.search(text)
    if match is None:
        return None
    if context and not WINDOWS_CONTEXT.search(text[max(0, match.start() - 40) : match.start()]):
        return None
    raw = match.group("hex") or match.group("dec")
    value = int(raw, 16) if match.group("hex") else int(raw)
    status = value & 0xFFFFFFFF
    if status not in WINDOWS_STATUS:
        return None
    signal, name = WINDOWS_STATUS[status]
    printed = value if match.group("dec") else status - (1 << 32)
    return printed, signal, name
