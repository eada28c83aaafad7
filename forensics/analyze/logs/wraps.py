"""Lines a console hard-wrapped: a fatal header split across two lines.

A Windows console wraps output at its buffer width and a copy of it keeps the break.  pytest's
progress dots fill the line to the console's width, and faulthandler writes its header right
after them, so the header is where such a break usually falls:

    tests\\unit\\test_json.py ......................Windows fatal exce
    ption: stack overflow

Neither half matches the fatal pattern.  The second half is handed to the scanner (its reason,
"stack overflow", is a trigger phrase) with the line before it; :func:`wrapped_fatal` joins them
when the first ends with the start of a header and the second begins with its rest.
"""

from __future__ import annotations

import re

FATAL_HEADS = ("Windows fatal exception", "Fatal Python error")
# The rest of a header cut before its colon, then the reason: "ption: stack overflow".
TAIL = re.compile(r"^(?P<rest>[A-Za-z ]{0,30}): \S")


def wrapped_fatal(before: str, text: str) -> str | None:
    """The fatal line *before* and *text* make together, when a wrap split its header."""
    tail = TAIL.match(text)
    if tail is None:
        return None
    rest = tail.group("rest")
    for head in FATAL_HEADS:
        if (
            head.endswith(rest)
            and len(rest) < len(head)
            and before.endswith(head[: -len(rest) or None])
        ):
            return before + text
    return None
