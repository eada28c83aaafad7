"""Delta debugging over the earlier tests, with repeated runs to see through flakiness.

First the full sequence must reproduce and the victim alone must not; then ``ddmin`` (Zeller
and Hildebrandt's minimizing delta debugging) keeps removing chunks of earlier tests as long as
what is left still reproduces.  Order is never changed: a polluter must run before its victim.

Flakiness only makes a trial miss, never invent a failure, so a miss can leave an extra test
in the result but cannot produce a set that does not reproduce.  The number of runs per trial
comes from how often the full sequence reproduced: every time -> one run; less often -> enough
runs to see a reproduction with 95% probability at that rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from forensics.bisect.target import Target
from forensics.bisect.trial import TrialResult, run_trial
from forensics.limits import WRAP_DEFAULTS, RunLimits

Outcome = Literal["polluters", "fails-alone", "no-repro"]
Progress = Callable[[str], None]


@dataclass
class Bisection:
    target: Target
    outcome: Outcome = "no-repro"
    polluters: list[str] = field(default_factory=list)
    confirm_runs: int = 0
    confirm_reproduced: int = 0
    runs_per_trial: int = 1
    trials: int = 0
    runs: int = 0
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)

    @property
    def repro(self) -> str | None:
        if self.outcome == "no-repro":
            return None
        return self.target.shell_command(self.polluters)


def runs_needed(reproduced: int, runs: int, cap: int) -> int:
    if runs == 0 or reproduced == 0:
        return cap
    if reproduced == runs:
        return 1
    rate = reproduced / runs
    return max(1, min(cap, math.ceil(math.log(0.05) / math.log(1 - rate))))


class _Runner:
    def __init__(
        self, bisection: Bisection, timeout: float, limits: RunLimits, progress: Progress
    ) -> None:
        self.b = bisection
        self.timeout = timeout
        self.limits = limits
        self.progress = progress
        self.cache: dict[tuple[str, ...], bool] = {}

    def once(self, earlier: tuple[str, ...], label: str) -> TrialResult:
        result = run_trial(self.b.target, earlier, self.timeout, self.limits)
        self.b.runs += 1
        line = f"{label}: {len(earlier)} earlier test(s) -> {result.how} ({result.seconds:.1f}s)"
        self.b.log.append(line)
        self.progress(line)
        return result

    def reproduces(self, earlier: tuple[str, ...]) -> bool:
        if earlier not in self.cache:
            self.b.trials += 1
            label = f"trial {self.b.trials}"
            self.cache[earlier] = any(
                self.once(earlier, label).reproduced for _ in range(self.b.runs_per_trial)
            )
        return self.cache[earlier]


def bisect(
    target: Target,
    *,
    repeat: int = 3,
    max_runs: int = 10,
    timeout: float = 300.0,
    limits: RunLimits = WRAP_DEFAULTS,
    progress: Progress = lambda _line: None,
) -> Bisection:
    started = time.monotonic()
    b = Bisection(target=target)
    runner = _Runner(b, timeout, limits, progress)
    full = target.prior
    b.confirm_runs = repeat
    b.confirm_reproduced = sum(runner.once(full, "full sequence").reproduced for _ in range(repeat))
    b.runs_per_trial = runs_needed(b.confirm_reproduced, repeat, max_runs)
    runner.cache[full] = b.confirm_reproduced > 0
    alone_runs = max(repeat, b.runs_per_trial)
    if b.confirm_reproduced == 0:
        b.outcome = "no-repro"
    elif any(runner.once((), "victim alone").reproduced for _ in range(alone_runs)):
        b.outcome = "fails-alone"
        runner.cache[()] = True
    else:
        runner.cache[()] = False
        b.outcome = "polluters"
        b.polluters = list(ddmin(list(full), lambda subset: runner.reproduces(tuple(subset))))
    b.seconds = time.monotonic() - started
    return b


def ddmin(items: list[str], reproduces: Callable[[list[str]], bool]) -> list[str]:
    """Shrink *items* (which reproduce; the empty list does not) to a 1-minimal list."""
    n = 2
    while len(items) >= 2:
        chunks = _split(items, n)
        smaller = next((c for c in chunks if reproduces(c)), None)
        if smaller is not None:
            items, n = smaller, 2
            continue
        if n > 2:
            # With two chunks each complement is the other chunk, already tried above.
            complements = ([x for c in chunks if c is not skip for x in c] for skip in chunks)
            smaller = next((c for c in complements if reproduces(c)), None)
            if smaller is not None:
                items, n = smaller, max(n - 1, 2)
                continue
        if n >= len(items):
            break
        n = min(len(items), 2 * n)
    return items


def _split(items: list[str], n: int) -> list[list[str]]:
    size, extra = divmod(len(items), n)
    chunks, start = [], 0
    for index in range(n):
        end = start + size + (1 if index < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [c for c in chunks if c]
