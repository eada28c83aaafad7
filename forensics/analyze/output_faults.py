"""Fatal errors that processes without a fault file of their own printed to the run's output.

The agent leaves a test's child processes their own stderr (a test may read it); where nothing
else was asked for, their faulthandler prints there, and what reached the terminal is in
``output.log``.  The supervisor noted now and then how large that file was
(``output.idx.jsonl``), so each "Fatal Python error" block gets a time, and a block is matched
to the process that died of that signal at that time.
"""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from pathlib import Path

from forensics.bundle import OUTPUT, OUTPUT_INDEX, read_jsonl
from forensics.faultparse import FaultBlock, fatal_blocks_in

_MAX_BLOCKS = 1000
# How far a block's time may be from the death it is matched to: the index is sparse (0.2 s)
# and a dying child's stderr reaches the terminal through its parent's pipes.
_BEFORE_S, _AFTER_S = 5.0, 2.0


@dataclass
class DatedBlock:
    block: FaultBlock
    offset: int
    line: int
    time: float | None
    claimed: bool = False


class OutputFaults:
    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self._blocks: list[DatedBlock] | None = None

    def claim(
        self, pid: int, signal: str | None, died_at: float | None
    ) -> tuple[FaultBlock, str] | None:
        """The fatal block printed when *pid* died of *signal*, and where it was found."""
        if died_at is None:
            return None
        best: DatedBlock | None = None
        for dated in self.blocks():
            if dated.claimed or dated.time is None:
                continue
            if signal is not None and dated.block.signal not in (None, signal):
                continue
            if not died_at - _BEFORE_S <= dated.time <= died_at + _AFTER_S:
                continue
            if best is None or abs(dated.time - died_at) < abs((best.time or 0.0) - died_at):
                best = dated
        if best is None:
            return None
        best.claimed = True
        threads = [dataclasses.replace(stack, pid=pid) for stack in best.block.threads]
        block = dataclasses.replace(best.block, threads=threads, first_line=best.line)
        return block, OUTPUT

    def blocks(self) -> list[DatedBlock]:
        if self._blocks is None:
            self._blocks = self._scan()
        return self._blocks

    def _scan(self) -> list[DatedBlock]:
        path = self.bundle / OUTPUT
        if path.is_symlink() or not path.is_file():
            return []
        index = [
            (int(r["offset"]), float(r["t"]))
            for r in read_jsonl(self.bundle / OUTPUT_INDEX)
            if isinstance(r.get("offset"), int) and isinstance(r.get("t"), (int, float))
        ]
        index.sort()
        offsets = [o for o, _ in index]
        found: list[DatedBlock] = []
        with open(path, "rb") as fh:
            for offset, line, block in fatal_blocks_in(fh, _MAX_BLOCKS):
                where = bisect.bisect_left(offsets, offset + 1)
                when = index[where][1] if where < len(index) else None
                found.append(DatedBlock(block, offset, line, when))
        return found
