"""Accuracy of `forensics analyze` on real CI log excerpts (tests/corpus, see its README).

`pytest -s tests/unit/test_corpus_figures.py` prints the figures table; the same table, per entry,
comes from `python tests/corpus/figures.py` (`--wrong` for the misses only).

The thresholds are the figures measured on main when the corpus was built, rounded down, so the
test passes today and fails on a regression; raise them as the analyzer improves. The goal
(issue 14): primary cause >= 0.95, crashed test >= 0.90, signal >= 0.90, no consequence primary.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

CORPUS = Path(__file__).resolve().parent.parent / "corpus"
FIXTURE_LOGS = Path(__file__).resolve().parent.parent / "fixtures" / "logs"

# Measured 2026-12-03 on s19-corpus with the held-out entries 069-104 in (99/104 causes, 32/34
# tests, 72/72 signals), rounded down. Goals: 0.95, 0.90, 0.90, 0.
CAUSE_MIN = 0.95
TEST_MIN = 0.94
SIGNAL_MIN = 1.00
CONSEQUENCE_PRIMARY_MAX = 0

TAXONOMY = {
    "native-crash",
    "oom-kill",
    "external-kill",
    "unexpected-exit",
    "hang",
    "xdist-internal",
    "python-exception",
    "infrastructure",
    "unknown",
}


def _load_figures() -> ModuleType:
    # tests/ is not a package: load the script by path, registered so its dataclasses resolve.
    spec = importlib.util.spec_from_file_location("corpus_figures", CORPUS / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fig = _load_figures()


@pytest.fixture(scope="module")
def outcomes() -> list[object]:
    return list(fig.evaluate_all(fig.load_labels()))


def test_corpus_is_well_formed() -> None:
    labels = fig.load_labels()
    assert len(labels) >= 60
    assert len({label.file for label in labels}) == len(labels)
    fixtures = {p.read_bytes() for p in FIXTURE_LOGS.glob("*.log")}
    for label in labels:
        assert label.path.is_file(), label.file
        text = label.path.read_bytes()
        assert text.strip(), label.file
        assert text not in fixtures, f"{label.file} copies a fixture of tests/fixtures/logs"
        assert label.url.startswith("https://github.com/"), label.url
        assert label.cause in TAXONOMY - {"unknown"}, label.file
        assert set(label.consequences) <= TAXONOMY, label.file
        assert label.cause not in label.consequences, label.file
        assert label.why.strip(), label.file
    logs = {f"logs/{p.name}" for p in (CORPUS / "logs").glob("*.log")}
    assert logs == {label.file for label in labels}, "a log without a label, or the reverse"


@pytest.mark.parametrize(
    ("label", "got", "same"),
    [
        ("tests/a.py::test_x[1]", "tests/a.py::test_x[1]", True),
        ("tests/a.py::test_x[1]", "/home/runner/work/p/p/tests/a.py::test_x[1]", True),
        ("pkg/tests/a.py::T::test_x", "tests/a.py::T::test_x", True),
        ("tests\\a.py::test_x", "./tests/a.py::test_x", True),
        ("tests/a.py", "tests/a.py::test_y", True),
        ("tests/a.py::test_x[1]", "tests/a.py::test_x[2]", False),
        ("tests/a.py::test_x", "tests/a.py", False),
        ("tests/a.py::test_x", "tests/ba.py::test_x", False),
        ("tests/a.py::test_x", "test_x", False),
        ("tests/a.py", None, False),
    ],
)
def test_node_ids_compare_loosely(label: str, got: str | None, same: bool) -> None:
    assert fig.same_test(label, got) is same


def test_figures_hold(outcomes: list[object]) -> None:
    print()
    for line in fig.table(outcomes):
        print(line)
    f = fig.figures(outcomes)
    assert f.cause.value >= CAUSE_MIN, f"primary cause {f.cause} < {CAUSE_MIN}"
    assert f.test.value >= TEST_MIN, f"crashed test {f.test} < {TEST_MIN}"
    assert f.signal.value >= SIGNAL_MIN, f"signal {f.signal} < {SIGNAL_MIN}"
    assert f.consequence_primary.hits <= CONSEQUENCE_PRIMARY_MAX, (
        f"a consequence was primary in {f.consequence_primary}"
    )
