"""The lines that matter, as regular expressions.

``TRIGGER`` is the cheap prefilter: one combined expression of literal phrases, run over
whole buffers (bytes) or single lines (str).  A line it does not hit is never looked at
again, which is what keeps the scanner near ``grep`` speed.  ``GREP_PATTERN`` is the same
alternation in POSIX ERE, so the benchmark compares like with like.
"""

from __future__ import annotations

import re

from forensics import faultparse
from forensics.faultparse import FATAL_SIGNALS
from forensics.rules import INFRASTRUCTURE

# Each phrase is a literal (regex-escaped below) of at least 4 bytes (the vectorised
# prefilter keys on the first four); keep them specific, every hit costs a Python-level parse,
# and keep their first four bytes rare in ordinary output ("when", "cann", " a" are not).
TRIGGER_PHRASES = (
    # pytest-xdist
    "node down",
    "crashed while running",
    "crashed worker",
    "crashed slave",
    "INTERNALERROR",
    "xdist/",  # frames of an INTERNALERROR traceback pasted without their prefix
    # faulthandler / pytest faulthandler_timeout
    "Fatal Python error",
    "hread 0x",
    "Stack (most recent",
    # native aborts
    "panicked at",
    "fatal runtime error",
    "terminate called",
    "core dumped",
    "Segmentation fault",
    # the kernel's own report of a fault (dmesg pasted into the log)
    "segfault at ",
    "traps: ",
    # deaths a shell, a CI runner or a runtime reports (logs/deaths.py)
    "Aborted",
    "Bus error",
    "Illegal instruction",
    "Floating point exception",
    "Terminated",
    "terminated by signal",  # fish "terminated by signal SIGABRT (Abort)"
    "killed by signal",  # meson "killed by signal 6 SIGABRT"
    "Abort trap",  # macOS bash: "Abort trap: 6"
    "didn't exit successfully",  # cargo test: the test binary died
    "panicked while panicking",
    "panic in a function",  # "panic in a function that cannot unwind"
    "uncaught exception",  # libc++abi; macOS "Terminating app due to uncaught exception"
    "fork() was called",  # objc fork safety ("when fork" would stop at every "when")
    "Exception Type:",  # macOS crash report
    "Crashed:",  # "Thread 0 Crashed::"
    "First throw call stack",
    # Windows NTSTATUS crash codes in hex. The decimal forms (-1073741819, 3221225477) are no
    # phrases: every pair of digits in them is common in a timestamped log, so the prefilter
    # would stop at almost every line; they are read on the lines that say "exit code",
    # "exit status" or "exited with", which is where a runner prints them.
    "0xC0000",
    "0xc0000",
    "0xE06D7363",
    "0xe06d7363",
    # pytest-timeout
    "Timeout",
    "Stack of ",
    "live log ",  # -o log_cli=true: a test's live-log section, dated by %(asctime)s
    # kills
    "Out of memory",
    "oom-kill",
    "oom_kill",
    "Killed",
    "exit code",
    "exit status",
    "operation was canceled",
    "lost communication",  # GitHub Actions: "The hosted runner: ... lost communication with ..."
    "shutdown signal",
    "maximum execution time",
    "took longer than",
    "exited with ",  # "exited with code 3", "unit-lib exited with -1073741819"
    "fatal exception",
    # the reasons a Windows fatal exception names, for a header a console wrap cut in two
    # (logs/wraps.py): "...Windows fatal exce" / "ption: stack overflow"
    "violation",
    "k overflow",
    # Python failures and the pytest summary
    "Traceback (most",
    "FAILED",
    "ERROR",
    "E   ",
    "___ ",
    # the end of pytest's result line: "== 3 failed, 1 passed in 4.20s ==", "(0:01:33) =="
    "s ==",
    ") ==",
    "rootdir: ",
    # the session header: what pytest-timeout and xdist were set to, and when tests began
    "timeout: ",
    "timeout method: ",
    "plugins: ",
    ", pytest-",
    "created: ",
    " workers [",
    # infrastructure
    "Connection refused",
    "Connection reset",
    "Name or service not known",
    "name resolution",
    "gaierror",  # socket.gaierror: getaddrinfo failed, at "socket.py:955: gaierror" too
    "Could not resolve",
    "getaddrinfo",
    "timed out",
    "error sending request",
    "Service Unavailable",
    "Bad Gateway",
    "Gateway Time",
    "Too Many Requests",
    "Error 5",  # "HTTP Error 503"; "HTTP" alone is on every request log line
)

TRIGGER = re.compile("|".join(re.escape(p) for p in TRIGGER_PHRASES))
TRIGGER_BYTES = re.compile("|".join(re.escape(p) for p in TRIGGER_PHRASES).encode())


def _ere(phrase: str) -> str:
    return re.sub(r"([][.*+?(){}|^$\\])", r"\\\1", phrase)


GREP_PATTERN = "|".join(_ere(p) for p in TRIGGER_PHRASES)

# --- pytest-xdist -------------------------------------------------------------------------
NODE_DOWN = re.compile(r"(?:\[(?P<worker>gw\d+)\] )?node down: (?P<reason>.*)$")
# "slave" is what pytest-xdist < 1.22 called a worker.
CRASHED_ITEM = re.compile(
    r"(?:worker|slave) '(?P<worker>gw\d+)' crashed while running '(?P<test>[^']+)'"
)
REPLACING = re.compile(r"[Rr]eplacing crashed (?:worker|slave) (?P<worker>gw\d+)")
MAX_CRASHED = re.compile(r"[Mm]aximum crashed workers reached: (?P<count>\d+)")
INTERNALERROR = re.compile(r"^INTERNALERROR> ?(?P<text>.*)$")
EXC_LINE = re.compile(
    r"^(?P<type>(?:[A-Za-z_][\w]*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Failure|"
    r"Failed|Warning|KeyError|Timeout|Panic\w*)|KeyError|Failed|AssertionError|StopIteration"
    r"|(?:socket\.)?(?:gaierror|herror))"  # socket's lower-case exceptions
    r"(?::\s?(?P<msg>.*))?$"
)
PY_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+), in (?P<name>\S+)')

# --- faulthandler -------------------------------------------------------------------------
# Its lines are read by one set of rules, forensics/faultparse.py's (a bundle's fault files go
# through them too); these are the names the scanner knows them by.
FATAL = faultparse.FATAL_RE
# Py_FatalError("func: message") aborts the process: SIGABRT, with this text as the reason.
FATAL_MESSAGE = re.compile(r"^[A-Za-z_][\w .:()'/,<>-]*$")
WINDOWS_FATAL = faultparse.WINDOWS_FATAL
FH_THREAD = faultparse.THREAD_RE
FH_STACK = faultparse.STACK_RE
FH_FRAME = faultparse.FRAME_RE
# The fatal names alone, to recover one spliced into another worker's line: the names
# faulthandler prints, from the one table that maps them to signals.
FATAL_NAME = re.compile("|".join(re.escape(name) for name in FATAL_SIGNALS))
FH_TIMEOUT = faultparse.TIMER_RE
# "test_x.py::test_a Fatal Python error" - pytest -v prints the node id before the crash.
LEADING_NODEID = re.compile(r"^\s*(?P<test>[\w./\\-]+\.py::[^\s]+) ")
# "test.py Windows fatal exception" - the dots line of the file whose test crashed.
LEADING_FILE = re.compile(r"^(?P<file>[\w./\\-]+\.py) [.FEsxX]*(?:Fatal|Windows)")

# --- native aborts ------------------------------------------------------------------------
RUST_PANIC = re.compile(
    r"thread '(?P<thread>[^']*)'(?: \(\d+\))? panicked at "
    r"(?:'(?P<oldmsg>.*)', )?(?P<loc>[^\s']+?):?$"
)
# "  12: tokio::runtime::park::block_on" and "   3:   0x10475 - std::io::Write::write_fmt::h10f"
# (the address and the symbol hash say nothing a reader needs).
RUST_FRAME = re.compile(r"^\s+\d+:\s+(?:0x[0-9a-fA-F]+ - )?(?P<name>\S.*?)(?:::h[0-9a-f]{16})?$")
RUST_AT = re.compile(r"^\s+at (?P<file>.+?):(?P<line>\d+)(?::\d+)?$")
CRATE = re.compile(r"/(?P<crate>[A-Za-z0-9_-]+-\d+\.\d+\.\d+[^/]*)/src/")
CPP_TERMINATE = re.compile(
    r"terminate called (?:after throwing an instance of '(?P<type>[^']+)'|(?P<other>.*))"
)
CPP_WHAT = re.compile(r"^\s+what\(\):\s+(?P<what>.*)$")
FATAL_RUNTIME = re.compile(r"fatal runtime error: (?P<what>.*)$")
# --- pytest-timeout -----------------------------------------------------------------------
# The thread method prints its banner where the cursor is: after -q's dots on a progress line.
TIMEOUT_BANNER = re.compile(r"^(?:(?P<test>[\w./\\-]+\.py::\S+) )?[^+]*?\++ Timeout \++$")
TIMEOUT_STACK = re.compile(r"^~+ Stack of (?P<thread>.+?) \((?P<tid>\d+)\) ~+$")
TIMEOUT_FAILED = re.compile(r"Failed: Timeout (?:\()?>(?P<limit>[\d.]+)s")

# --- kills --------------------------------------------------------------------------------
OOM = re.compile(
    r"(?:Out of memory|Memory cgroup out of memory): "
    r"Killed process (?P<pid>\d+) \((?P<comm>[^)]*)\)"
    r"|(?P<reaper>oom-kill:|oom_kill_process|invoked oom-killer:|"
    r"oom_reaper: reaped process (?P<rpid>\d+))"
)
EXIT_CODE = re.compile(r"(?:exit (?:code|status)|exited with code)[: ]+(?P<code>-?\d+)")
# CI's own time limit: the job ran out of time, which for a test run means it hung.
CI_TIMEOUT = re.compile(r"exceeded the maximum execution time|execution took longer than")
# A GitHub Actions runner that stopped answering: GitHub's own message names what causes it
# ("terminates the runner process, starves it for CPU/Memory, or blocks its network access"),
# and for a test run it is most often memory.
RUNNER_LOST = re.compile(r"runner: .{0,200}? lost communication with the server")
# A cancel of the job: the user's, the runner's shutdown, or its time limit.
CANCELED = re.compile(
    r"The operation was canceled|received a shutdown signal|"
    + CI_TIMEOUT.pattern
    + "|"
    + RUNNER_LOST.pattern
)
# GNU/BusyBox `timeout` on the killed command line (`Killed   timeout -s KILL 600 pytest`): the
# tool, not the kernel, sent the signal.
TIMEOUT_TOOL = re.compile(r"\btimeout\s+(?:-\S+(?:\s+[A-Z]+)?\s+)*\d+(?:\.\d+)?[smhd]?\s")

# --- pytest reports -----------------------------------------------------------------------
# Bounded, and anchored where a number starts: each try is short on a line of digits.
SUMMARY_ITEM = re.compile(
    r"(?<!\d)(?P<n>\d{1,9}) (?P<what>failed|passed|skipped|errors?|xfailed|xpassed)"
)
SUMMARY_LINE = re.compile(
    # "in 4.20s" and, before pytest 5, "in 38.50 seconds"
    r"^=+ (?P<body>(?:\d+ \w+(?:, )?)+.*?) in (?P<secs>\d+(?:\.\d+)?)(?:s| seconds)"
    r"(?: \([^)]*\))? =+$"
)
SHORT_RESULT = re.compile(
    r"^(?P<kind>FAILED|ERROR) (?P<test>\S+?::\S+|\S+\.py)(?: - (?P<msg>.*))?$"
)
PROGRESS_RESULT = re.compile(
    r"^\[ *\d+%\] (?P<kind>FAILED|ERROR) (?P<test>\S+)|^(?P<test2>\S+::\S+) (?P<kind2>FAILED|ERROR)"
)
# The same xdist result line behind a prefix a log collector added ("tensorflow\t[gw13] ..."):
# the worker tag and the percentage together are xdist's alone.
PREFIXED_RESULT = re.compile(
    r"\[(?P<worker>gw\d+)\] \[ *\d+%\] (?P<kind>FAILED|ERROR) (?P<test>[^\s:]+::\S+)"
)
# The title is the test's name with its parameter id, which may hold spaces
# ("test_parse[empty string]"); bounded, so a long line of underscores costs one pass.
SECTION_HEADER = re.compile(
    r"^_{3,} (?:(?P<err>ERROR) (?:at (?P<phase>setup|teardown) of |collecting )?)?"
    r"(?P<name>\S(?:[^\n]{0,500}?\S)?) _{3,}$"
)
# A message's continuation lines keep their own tab ("E       \tIs the server running on ...").
E_LINE = re.compile(r"^E {3,}\t?(?P<text>\S.*)$")
# A traceback entry's location in a failure section: "tests/test_x.py:26: AssertionError", or
# with nothing after the colon for an entry that is not the last.
LOCATION = re.compile(
    r"^(?P<file>(?:[A-Za-z]:)?[^\s:]+\.py):(?P<line>\d+):(?: (?P<exc>[A-Za-z_][\w.]*))?\s*$"
)
# pytest's default ``python_files``: the file a test function lives in.
TEST_FILE = re.compile(r"(?:^|[/\\])(?:test_[^/\\]*|[^/\\]*_test)\.py$")
TEST_DEF = re.compile(r"^\s*(?:async\s+)?def (?P<name>test\w*)\(")
# The ">" line of a frame whose source raises: what the frame raised, for a section whose "E"
# lines the excerpt lost.
RAISE_LINE = re.compile(r"^>\s+raise (?P<type>[A-Za-z_][\w.]*)\((?P<args>.*)\)\s*$")
ROOTDIR = re.compile(r"^rootdir: (?P<dir>\S+)")
# The session header: "platform linux -- Python 3.11.7, pytest-9.2.0, pluggy-1.7.0",
# "plugins: timeout-2.4.0, xdist-3.8.0", "timeout: 5.0s", "timeout method: thread",
# "created: 2/2 workers", "2 workers [6 items]" (the tests begin).
HEADER_PLATFORM = re.compile(
    r"^platform (?P<platform>\S+) -- Python (?P<python>[\w.+]+), pytest-(?P<pytest>[\w.]+)"
)
HEADER_PLUGINS = re.compile(r"^plugins: (?P<list>.+)$")
# A name starts where a word does and is bounded: each try is short on a long line.
HEADER_PLUGIN = re.compile(r"(?<![\w.-])(?P<name>[\w.-]{1,100}?)-(?P<version>\d[\w.+]{0,50})")
HEADER_TIMEOUT = re.compile(r"^timeout: (?P<secs>\d+(?:\.\d+)?)s$")
HEADER_TIMEOUT_METHOD = re.compile(r"^timeout method: (?P<method>\w+)$")
HEADER_CREATED = re.compile(r"^created: (?P<up>\d+)/(?P<total>\d+) workers$")
HEADER_BEGIN = re.compile(r"^(?P<workers>\d+) workers \[(?P<items>\d+) items?\]")

# --- infrastructure -----------------------------------------------------------------------
# The one infrastructure rule set, shared with bundles (forensics/rules.py).
INFRA = INFRASTRUCTURE
# A Python failure that only follows from a crash elsewhere.  Not "Event loop is closed": an
# asyncio loop closed under a test (a fixture's loop scope, a loop closed in teardown) is that
# test's own bug - a crash in another process cannot close it, and after a crash in this one
# no test runs to see it.
CONSEQUENCE = re.compile(
    r"BrokenProcessPool|terminated abruptly|BrokenPipeError|"
    r"WorkerController|EOFError|Worker exited unexpectedly|ChildProcessError"
)
HTTP_HOST = re.compile(r"https?://(?P<host>[\w.-]+)")

SIGNAL_BY_EXIT = {
    134: "SIGABRT",
    137: "SIGKILL",
    139: "SIGSEGV",
    135: "SIGBUS",
    136: "SIGFPE",
    132: "SIGILL",
    143: "SIGTERM",
    -6: "SIGABRT",
    -9: "SIGKILL",
    -11: "SIGSEGV",
}
