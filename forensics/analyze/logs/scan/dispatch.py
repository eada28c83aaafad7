"""The scanner's table: which words on a line send it to which parser, in the order tried.

A rule fires when the line starts with one of its words (:func:`starts`), holds one of them
(:func:`has`), or always (``ALWAYS``).  Its handler returns True when the line was its
record, and the line goes no further; a handler that declines (its pattern did not match
after all) passes the line on to the next rule.  The words are cheap substring tests that keep
a line away from regexes that cannot match it.  A line gets here when it holds one of
:data:`patterns.TRIGGER`'s phrases, or while a block, a failure section or a death is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.faults import Faults
from forensics.analyze.logs.scan.header import Header
from forensics.analyze.logs.scan.internal_errors import InternalErrors
from forensics.analyze.logs.scan.kill_lines import Kills
from forensics.analyze.logs.scan.last_words import NativeAborts
from forensics.analyze.logs.scan.sections import Sections
from forensics.analyze.logs.scan.time_figures import TimeFigures
from forensics.analyze.logs.scan.timeout_dumps import TimeoutDumps
from forensics.analyze.logs.scan.tracebacks import Tracebacks
from forensics.analyze.logs.scan.workers import Workers

START, IN, IN_ANY, ANY = 0, 1, 2, 3

Handler = Callable[[Line], bool]
Guard = tuple[int, tuple[str, ...]]  # (where, words)
# (where, words, handler): a plain tuple, which the loop unpacks fastest
Rule = tuple[int, tuple[str, ...], Handler]


def starts(*words: str) -> Guard:
    """The line starts with one of *words*."""
    return START, words


def has(*words: str) -> Guard:
    """The line holds one of *words* (one word is tested without a loop)."""
    return (IN if len(words) == 1 else IN_ANY), words


ALWAYS: Guard = (ANY, ())


def rule(guard: Guard, handle: Handler) -> Rule:
    return guard[0], guard[1], handle


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
        rule(starts("INTERNALERROR"), internal.line),
        rule(has("Fatal Python error", "Windows fatal exception"), faults.start),
        rule(has(": "), faults.wrapped_start),
        rule(has("hread 0x"), faults.start),
        rule(starts("Stack (most recent"), faults.start),
        rule(has("Timeout ("), faults.timeout_start),
        rule(has("Timeout +"), timeouts.banner),
        rule(has("Stack of "), timeouts.stack_head),
        rule(has("node down"), workers.node_down),
        rule(starts("FAILED", "ERROR"), sections.short_result),
        rule(has("crashed while running"), workers.crashed_item),
        rule(has("crashed worker", "crashed slave"), workers.replaced),
        rule(has("panicked at"), natives.panic),
        rule(has("fatal runtime error"), natives.rust_fatal),
        rule(has("terminate called"), natives.terminate),
        rule(has("durations"), figures.durations_header),
        rule(has("live log"), figures.live_log_header),
        rule(has("segfault at ", "traps: "), kills.kernel),
        rule(ALWAYS, sections.death),  # a shell's, a runner's, a runtime's (logs/deaths.py)
        rule(has("oom", "Out of memory"), kills.oom),
        rule(has("exit code", "exit status", "exited with code"), kills.exit_code),
        rule(ALWAYS, kills.canceled),
        rule(starts("E ", "E\t"), sections.e_line),
        rule(starts("___"), sections.title),
        rule(has("== "), sections.summary_line),
        rule(has("FAILED", "ERROR"), workers.result),
        rule(starts("Traceback"), tracebacks.start),
        rule(has("xdist/"), internal.xdist_frame),
        rule(starts("rootdir: "), header.rootdir),
        rule(ALWAYS, header.line),
        rule(ALWAYS, kills.infra_line),
    ]


def dispatch(table: Sequence[Rule], line: Line) -> None:
    """Give *line* to the first rule whose words it has and whose handler takes it."""
    text = line.text
    for where, words, handle in table:
        if where == IN:
            if words[0] not in text:
                continue
        elif where == START:
            if not text.startswith(words):
                continue
        elif where == IN_ANY:
            for word in words:
                if word in text:
                    break
            else:
                continue
        if handle(line):
            return
