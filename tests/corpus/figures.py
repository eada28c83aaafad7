"""Accuracy of `forensics analyze` on the labelled corpus of real CI log excerpts.

    python tests/corpus/figures.py            # one row per entry, then the totals
    python tests/corpus/figures.py --wrong    # only the entries the analyzer gets wrong

Each entry of `labels.json` is analyzed in-process with `analyze_logs` (what
`forensics analyze LOG --format json` prints) and its primary incident (the first: the triage
orders incidents by severity) is compared with the label:

- cause: the primary incident's cause equals the labelled cause; no incident at all counts as
  wrong (the corpus has no 'unknown' label, every thread established a cause);
- test: over entries whose label names a test, the primary incident names it. Node ids compare
  loosely: backslashes become slashes and a leading './' is dropped, the file parts match when
  one ends with the other at a '/' boundary (the analyzer may keep a rootdir prefix the excerpt
  lacks, or drop one), and the '::' part (class, function and parameters) must be equal. A label
  that is only a file (the excerpt shows no more) matches any test in that file;
- signal: over entries whose label names a signal, the primary incident's signal equals it
  (Windows access violations are labelled SIGSEGV, the analyzer's convention);
- consequences: over entries that list them, the primary cause is none of them (a consequence
  is never primary).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
LABELS = HERE / "labels.json"


@dataclass(frozen=True)
class Label:
    file: str
    url: str
    cause: str
    test: str | None
    signal: str | None
    consequences: tuple[str, ...]
    why: str

    @property
    def path(self) -> Path:
        return HERE / self.file


@dataclass(frozen=True)
class Outcome:
    label: Label
    cause: str | None
    test: str | None
    signal: str | None
    incidents: int

    @property
    def cause_ok(self) -> bool:
        return self.cause == self.label.cause

    @property
    def test_ok(self) -> bool | None:
        if self.label.test is None:
            return None
        return same_test(self.label.test, self.test)

    @property
    def signal_ok(self) -> bool | None:
        if self.label.signal is None:
            return None
        return self.signal == self.label.signal

    @property
    def consequence_primary(self) -> bool | None:
        if not self.label.consequences:
            return None
        return self.cause in self.label.consequences

    @property
    def wrong(self) -> bool:
        return (
            not self.cause_ok
            or self.test_ok is False
            or self.signal_ok is False
            or self.consequence_primary is True
        )


@dataclass(frozen=True)
class Ratio:
    hits: int
    total: int

    @property
    def value(self) -> float:
        return self.hits / self.total if self.total else 1.0

    def __str__(self) -> str:
        return f"{self.hits}/{self.total} = {self.value:.1%}"


@dataclass(frozen=True)
class Figures:
    cause: Ratio
    test: Ratio
    signal: Ratio
    consequence_primary: Ratio  # hits = entries whose primary cause is a listed consequence


def load_labels(path: Path = LABELS) -> list[Label]:
    rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return [
        Label(
            file=row["file"],
            url=row["url"],
            cause=row["cause"],
            test=row["test"],
            signal=row["signal"],
            consequences=tuple(row["consequences"]),
            why=row["why"],
        )
        for row in rows
    ]


def _norm(node_id: str) -> str:
    text = node_id.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def _same_file(a: str, b: str) -> bool:
    return a == b or a.endswith("/" + b) or b.endswith("/" + a)


def same_test(label: str, got: str | None) -> bool:
    """Whether the analyzer's test `got` is the labelled test (see the module docstring)."""
    if not got:
        return False
    want_file, _, want_rest = _norm(label).partition("::")
    got_file, _, got_rest = _norm(got).partition("::")
    if not _same_file(want_file, got_file):
        return False
    return not want_rest or want_rest == got_rest


def evaluate(label: Label) -> Outcome:
    from forensics.analyze.logs import analyze_logs

    triage = analyze_logs([str(label.path)])
    if not triage.incidents:
        return Outcome(label, None, None, None, 0)
    primary = triage.incidents[0]
    return Outcome(label, primary.cause, primary.test, primary.signal, len(triage.incidents))


def evaluate_all(labels: Iterable[Label]) -> list[Outcome]:
    return [evaluate(label) for label in labels]


def figures(outcomes: list[Outcome]) -> Figures:
    def ratio(marks: Iterable[bool | None]) -> Ratio:
        judged = [m for m in marks if m is not None]
        return Ratio(sum(judged), len(judged))

    return Figures(
        cause=ratio(o.cause_ok for o in outcomes),
        test=ratio(o.test_ok for o in outcomes),
        signal=ratio(o.signal_ok for o in outcomes),
        consequence_primary=ratio(o.consequence_primary for o in outcomes),
    )


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("ok" if ok else "WRONG")


def rows(outcomes: list[Outcome]) -> Iterator[str]:
    """One line per entry: the verdicts, then what was expected and what the analyzer said."""
    for o in outcomes:
        label = o.label
        yield (
            f"{Path(label.file).name:48} cause {_mark(o.cause_ok):5} test {_mark(o.test_ok):5}"
            f" signal {_mark(o.signal_ok):5}"
            f" | want {label.cause}/{label.test or '-'}/{label.signal or '-'}"
            f" got {o.cause or 'no incident'}/{o.test or '-'}/{o.signal or '-'}"
            + (" CONSEQUENCE PRIMARY" if o.consequence_primary else "")
        )


def by_cause(outcomes: list[Outcome]) -> Iterator[str]:
    causes = sorted({o.label.cause for o in outcomes})
    for cause in causes:
        mine = [o for o in outcomes if o.label.cause == cause]
        yield f"  {cause:18} {sum(o.cause_ok for o in mine):3}/{len(mine):<3} primary cause right"


def table(outcomes: list[Outcome], only_wrong: bool = False) -> Iterator[str]:
    shown = [o for o in outcomes if o.wrong] if only_wrong else outcomes
    yield from rows(shown)
    f = figures(outcomes)
    yield ""
    yield f"entries: {len(outcomes)}"
    yield from by_cause(outcomes)
    yield f"primary cause right:   {f.cause}"
    yield f"crashed test right:    {f.test}"
    yield f"signal right:          {f.signal}"
    yield f"consequence primary:   {f.consequence_primary}  (goal: 0)"


def main(argv: list[str]) -> int:
    only_wrong = "--wrong" in argv
    for line in table(evaluate_all(load_labels()), only_wrong=only_wrong):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
