"""The scanner's table: which words on a line send it to which parser, in the order tried.

A rule fires when the line starts with one of its words (``START``), holds one of them
(``IN``), or always (``ANY``); its handler returns True when the line was its record, and the
line goes no further.  A handler that declines (its pattern did not match after all) passes
the line on to the next rule.  The words are cheap substring tests that keep a line away from
regexes that cannot match it.  A line gets here when it holds one of :data:`patterns.TRIGGER`'s
phrases, or while a block, a failure section or a death is being read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

from forensics.analyze.logs.blocks import Line
from forensics.analyze.logs.faults import Faults
from forensics.analyze.logs.header import Header
from forensics.analyze.logs.internal_errors import InternalErrors
from forensics.analyze.logs.kills import Kills
from forensics.analyze.logs.native_aborts import NativeAborts
from forensics.analyze.logs.sections import Sections
from forensics.analyze.logs.time_figures import TimeFigures
from forensics.analyze.logs.timeout_dumps import TimeoutDumps
from forensics.analyze.logs.tracebacks import Tracebacks
from forensics.analyze.logs.workers import Workers

START, IN, ANY = 0, 1, 2


class Rule(NamedTuple):
    where: int  # START, IN or ANY
    words: tuple[str, ...]
    handle: Callable[[Line], bool]


def rules(
    *,
    internal: InternalErrors,
    faults: Faults,
    timeouts: TimeoutDumps,
    workers: Workers,
    sections: Sections,
    natives: NativeAborts,
    figures: TimeFigures,
    kills: Kills,
    tracebacks: Tracebacks,
    header: Header,
) -> list[Rule]:
    """The rules over the parsers of one scan.  Order matters where words overlap: a fault
    dump's header before a timeout's, a short-summary ``FAILED`` line before a progress one,
    the deaths' own words before a kill's, the session header last."""
    return [
        Rule(START, ("INTERNALERROR",), internal.line),
        Rule(IN, ("Fatal Python error", "Windows fatal exception"), faults.start),
        Rule(IN, ("hread 0x",), faults.start),
        Rule(START, ("Stack (most recent",), faults.start),
        Rule(START, ("Timeout (",), faults.timeout_start),
        Rule(IN, ("Timeout +",), timeouts.banner),
        Rule(IN, ("Stack of ",), timeouts.stack_head),
        Rule(IN, ("node down",), workers.node_down),
        Rule(START, ("FAILED", "ERROR"), sections.short_result),
        Rule(IN, ("crashed while running",), workers.crashed_item),
        Rule(IN, ("crashed worker", "crashed slave"), workers.replaced),
        Rule(IN, ("panicked at",), natives.panic),
        Rule(IN, ("fatal runtime error",), natives.rust_fatal),
        Rule(IN, ("terminate called",), natives.terminate),
        Rule(IN, ("durations",), figures.durations_header),
        Rule(IN, ("live log",), figures.live_log_header),
        Rule(IN, ("segfault at ", "traps: "), kills.kernel),
        Rule(ANY, (), sections.death),  # a shell's, a runner's, a runtime's (logs/deaths.py)
        Rule(IN, ("oom", "Out of memory"), kills.oom),
        Rule(IN, ("exit code", "exit status", "exited with code"), kills.exit_code),
        Rule(ANY, (), kills.canceled),
        Rule(START, ("E ", "E\t"), sections.e_line),
        Rule(START, ("___",), sections.title),
        Rule(IN, ("== ",), sections.summary_line),
        Rule(IN, ("FAILED", "ERROR"), workers.result),
        Rule(START, ("Traceback",), tracebacks.start),
        Rule(IN, ("xdist/",), internal.xdist_frame),
        Rule(START, ("rootdir: ",), header.rootdir),
        Rule(ANY, (), header.line),
        Rule(ANY, (), kills.infra_line),
    ]


def dispatch(table: Sequence[Rule], line: Line) -> None:
    """Give *line* to the first rule whose words it has and whose handler takes it."""
    text = line.text
    for where, words, handle in table:
        if where == START:
            if not text.startswith(words):
                continue
        elif where == IN:
            for word in words:
                if word in text:
                    break
            else:
                continue
        if handle(line):
            return
