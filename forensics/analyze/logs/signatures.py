"""Normalized failure signatures: the same failure from different runs reads the same.

What differs between runs of one failure is noise for grouping: object addresses, pids,
temporary directories, counters, durations, worker ids.  ``normalize`` replaces each with a
placeholder, so ``Queue <multiprocessing.queues.Queue object at 0x7f0c3c6c2e40> is closed``
from any run groups under ``Queue <multiprocessing.queues.Queue object at <addr>> is closed``.
"""

from __future__ import annotations

import re

# Longest signature kept: a signature is a grouping key, not evidence.
MAX_SIGNATURE = 300

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# Temporary paths first: they contain numbers and hex that later rules would half-replace.
_TEMP_PATH = re.compile(
    r"(?:/tmp|/var/tmp|/private/var/folders|/var/folders|/dev/shm)/[^\s'\",:)\]]*"
    r"|[A-Za-z]:\\[^\s'\"]*\\(?:Temp|tmp)\\[^\s'\",:)\]]*"
    r"|pytest-of-[^\s/'\"]+/pytest-\d+(?:/[^\s'\",:)\]]*)?"
)
_UUID = re.compile(
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
)
_ADDR = re.compile(r"\b0x[0-9a-fA-F]+\b")
_LONG_HEX = re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{12,}\b")
_PID = re.compile(r"\b(pid|PID|process|Process)([ =:#]+)\d+")
_WORKER = re.compile(r"\bgw\d+\b")
_NUMBER = re.compile(r"(?<![A-Za-z_.\d])\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Return *text* with run-specific details replaced by placeholders.

    Addresses become ``<addr>``, temporary paths ``<tmp>``, pids ``pid <n>``, worker ids
    ``gw?``, other numbers ``<n>``; whitespace is collapsed.  Digits glued to a name
    (``python3.11``, ``test_case_2``) are kept: they name things rather than count them.
    """
    text = _ANSI.sub("", text)
    text = _TEMP_PATH.sub("<tmp>", text)
    text = _UUID.sub("<uuid>", text)
    text = _ADDR.sub("<addr>", text)
    text = _LONG_HEX.sub("<hex>", text)
    text = _PID.sub(r"\1\2<n>", text)
    text = _WORKER.sub("gw?", text)
    text = _NUMBER.sub("<n>", text)
    text = _SPACE.sub(" ", text).strip()
    return text[:MAX_SIGNATURE]
