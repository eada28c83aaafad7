"""Find the lines that may hold a trigger phrase: the part of the scanner that sees every byte.

``re`` over the plain alternation of our ~60 phrases tries every alternative at almost every
position (about 20 MB/s), so neither path below does that.  Both key each phrase on the part
of it that is rarest *in this log* (counted in its first chunk: a pytest log is full of ``_``,
spaces and ``[gw3]``, a compiler log of other things), and both report **candidates**: offsets
that lie inside a line worth checking, at least one in every line that holds a phrase.  The
reader confirms each candidate line with :data:`patterns.TRIGGER_BYTES`, so the lines scanned
are exactly those the regex finds, whichever path ran.

- With numpy (the ``fast`` extra): each phrase is keyed on its rarest byte pair; one 64 Ki
  lookup table of those pairs is gathered over both 2-byte alignments of the buffer.
- Without: each phrase is keyed on its rarest byte; one regex of branches
  ``k(?:rest(?<=phrase)|...)``, one per key byte ``k``, lets ``re`` skip, in C, every position
  whose byte is no key and check the rest of a phrase only where it is one.  About 4x slower
  than with numpy on a pytest log (the ``re`` loop costs a few ns a byte, a stop ~100 ns), and
  still 2-5x faster than the plain alternation.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

from forensics.analyze.logs.patterns import TRIGGER_PHRASES

np: Any
try:  # optional accelerator (`pip install forensics[fast]`): same lines, faster on large logs
    import numpy as np
except ImportError:
    np = None

Buffer = bytes | bytearray
Candidates = Callable[[Buffer, int], Iterator[int]]

_PHRASES = tuple(dict.fromkeys(p.encode() for p in TRIGGER_PHRASES))


def count_newlines(buf: Buffer, start: int, end: int) -> int:
    """``buf.count(b"\\n", start, end)``, vectorised for long spans when numpy is there."""
    if np is None or end - start < 1 << 14:
        return buf.count(b"\n", start, end)
    return int(np.count_nonzero(np.frombuffer(buf, dtype=np.uint8, count=end)[start:] == 10))


def candidates_for(sample: Buffer, vectorised: bool | None = None) -> Candidates:
    """The candidate finder for a log whose first bytes are ``sample``.

    ``vectorised`` picks the path (default: numpy when importable); the lines found are the
    same either way.
    """
    if vectorised is None:
        vectorised = np is not None
    if vectorised:
        return _pair_candidates(sample)
    return _byte_candidates(sample)


# --- with numpy ---------------------------------------------------------------------------------
def _pair_candidates(sample: Buffer) -> Candidates:
    """Offsets of each phrase's rarest byte pair, found for all positions at once."""
    counts = _pair_counts(sample)
    table = np.zeros(1 << 16, dtype=np.bool_)
    for phrase in _PHRASES:
        pairs = [phrase[k] | phrase[k + 1] << 8 for k in range(len(phrase) - 1)]
        table[min(pairs, key=lambda pair: int(counts[pair]))] = True

    def candidates(buf: Buffer, end: int) -> Iterator[int]:
        if end < 2:
            return iter(())
        evens = np.frombuffer(buf, dtype="<u2", count=end // 2)
        odds = np.frombuffer(buf, dtype="<u2", count=(end - 1) // 2, offset=1)
        at = np.concatenate((_true_at(table, evens) * 2, _true_at(table, odds) * 2 + 1))
        found: list[int] = np.sort(at).tolist()
        return iter(found)

    return candidates


def _true_at(table: Any, words: Any) -> Any:
    """Indices of ``words`` whose entry in ``table`` is true (few: the keys are rare)."""
    # take(mode="wrap") skips the bounds check (a uint16 cannot be out of range); it is
    # faster than mode="clip" and twice as fast as fancy indexing.
    hit = np.take(table, words, mode="wrap")
    whole = len(hit) & ~7
    # Sparse: look for non-zero 8-byte words first, then within those only.
    blocks = np.flatnonzero(hit[:whole].view(np.uint64))
    inside = np.flatnonzero(hit[:whole].reshape(-1, 8)[blocks]) if len(blocks) else blocks
    at = blocks[inside // 8] * 8 + inside % 8 if len(blocks) else blocks
    return np.concatenate((at, np.flatnonzero(hit[whole:]) + whole))


def _pair_counts(sample: Buffer) -> Any:
    """How often each little-endian byte pair occurs in ``sample``, both alignments."""
    if len(sample) < 2:
        return np.zeros(1 << 16, dtype=np.int64)
    evens = np.frombuffer(sample, dtype="<u2", count=len(sample) // 2)
    odds = np.frombuffer(sample, dtype="<u2", count=(len(sample) - 1) // 2, offset=1)
    return np.bincount(evens, minlength=1 << 16) + np.bincount(odds, minlength=1 << 16)


# --- without numpy ------------------------------------------------------------------------------
def _byte_candidates(sample: Buffer) -> Candidates:
    """Offsets of each phrase's rarest byte where the whole phrase stands around it.

    ``re`` stops at every key byte, so a phrase whose rarest byte is still common here (the
    ``_`` of ``"___ "`` among test names) is searched for alone: a literal runs at memchr-like
    speed, one pass costs less than stopping at every ``_``.
    """
    counts = {b: sample.count(bytes((b,))) for b in {b for p in _PHRASES for b in p}}
    by_key: dict[int, list[tuple[bytes, bytes]]] = defaultdict(list)
    for phrase in _PHRASES:
        at = min(range(len(phrase)), key=lambda k: (counts[phrase[k]], k))
        by_key[phrase[at]].append((phrase[at + 1 :], phrase))
    finders: list[re.Pattern[bytes]] = []
    branches = []
    # The most frequent key first: `re` tries the branches in order at every stop.
    for key, items in sorted(by_key.items(), key=lambda item: (-counts[item[0]], item[0])):
        # Measured: a stop costs ~80 ns, a pass of a literal ~0.55 ns a byte.
        if counts[key] * 80 > len(sample) * 0.55 * len(items):
            finders.extend(re.compile(re.escape(whole)) for _rest, whole in items)
            continue
        # The rest of the phrase first, so `re` drops most alternatives on their first byte;
        # the look-behind then checks the part before the key, ending where the phrase ends.
        alternatives = [
            re.escape(rest) + b"(?<=" + re.escape(whole) + b")" for rest, whole in items
        ]
        branches.append(re.escape(bytes((key,))) + b"(?:" + b"|".join(alternatives) + b")")
    if branches:
        finders.append(re.compile(b"|".join(branches), re.DOTALL))

    def candidates(buf: Buffer, end: int) -> Iterator[int]:
        found = [(m.start() for m in finder.finditer(buf, 0, end)) for finder in finders]
        return found[0] if len(found) == 1 else heapq.merge(*found)

    return candidates
