"""What a runtime prints as it dies, recognised by the log scanner's own rules.

The scanner makes findings of a Rust panic or fatal runtime error, C++'s ``terminate called``
and its ``what()``, libc++abi's uncaught exception, an Objective-C exception or fork-safety
abort, and Rust aborting while it panics (:mod:`.patterns`, :mod:`.deaths`).  A bundle's native
facts (:mod:`forensics.analyze.native`) quote the same lines from the run's output, so they
are recognised here from the same expressions, plus the abort messages the scanner makes no
finding of (the shell's or the supervisor's report of the death is the finding there).
"""

from __future__ import annotations

import re

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.death_lines import CXX_UNCAUGHT, NS_UNCAUGHT, OBJC_FORK, RUST_ABORTING

# glibc's assert() and heap checks, the stack protector and fortify, libc++abi's terminate
# with no exception in flight, and Rust's last line after a panic that could not unwind.
# The spans are bounded: a line may be long, and a span that runs to its end is tried from
# every "Assertion" in it.
ABORT_MESSAGE = re.compile(
    r"Assertion [`'][^\n]{0,1000}?' failed|: Assertion [^\n]{0,1000}? failed\.|"
    r"\*\*\* (?:stack smashing|buffer overflow) detected|double free|free\(\): invalid|"
    r"malloc\(\): |corrupted size vs\. prev_size|"
    r"libc\+\+abi(?:\.dylib)?: terminating|thread caused non-unwinding panic"
)

RULES = (
    P.RUST_PANIC,
    P.FATAL_RUNTIME,
    P.CPP_TERMINATE,
    P.CPP_WHAT,
    CXX_UNCAUGHT,
    NS_UNCAUGHT,
    OBJC_FORK,
    RUST_ABORTING,
    ABORT_MESSAGE,
)


def is_dying_word(line: str) -> bool:
    """Whether *line* (one line, without its end) is a runtime's words as it dies."""
    text = line.rstrip()
    return any(rule.search(text) for rule in RULES)
