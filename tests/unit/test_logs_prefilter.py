"""Both prefilters lead the reader to exactly the lines the trigger regex finds."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.analyze.logs import prefilter
from forensics.analyze.logs.patterns import TRIGGER_BYTES, TRIGGER_PHRASES
from forensics.analyze.logs.reader import scan_stream

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"
FIXTURES = sorted(LOGS.glob("*.log"))
PATHS = [False] + ([True] if prefilter.np is not None else [])
# What a pytest -v log is full of, so the keys are chosen away from it.
PROGRESS = b"tests/test_io.py::test_reader_thread_time[utf-8] PASSED      [ 3%]\n" * 200


def _line_end(buf: bytes, at: int) -> int:
    end = buf.find(b"\n", at)
    return len(buf) if end < 0 else end


def _regex_lines(buf: bytes) -> list[int]:
    starts = [0] + [i + 1 for i, b in enumerate(buf) if b == 10]
    return [s for s in starts if TRIGGER_BYTES.search(buf, s, _line_end(buf, s))]


def _candidate_lines(buf: bytes, sample: bytes, vectorised: bool) -> list[int]:
    """Line starts holding a candidate that the reader would confirm."""
    found = prefilter.candidates_for(sample, vectorised)(buf, len(buf))
    lines = set()
    for at in found:
        assert 0 <= at < len(buf) and buf[at] != 10, "a candidate outside any line"
        start = buf.rfind(b"\n", 0, at) + 1
        if TRIGGER_BYTES.search(buf, start, _line_end(buf, at)):
            lines.add(start)
    return sorted(lines)


def test_phrases_are_long_enough_for_a_pair_key() -> None:
    assert all(len(p.encode()) >= 2 for p in TRIGGER_PHRASES)


def test_the_trigger_is_the_phrases_and_nothing_else() -> None:
    # The prefilters key on TRIGGER_PHRASES; an alternative added to the regex alone would be
    # confirmed by the reader but never proposed, so its lines would be missed.
    assert TRIGGER_BYTES.pattern == "|".join(map(re.escape, TRIGGER_PHRASES)).encode()


@pytest.mark.parametrize("vectorised", PATHS)
@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_fixtures(path: Path, vectorised: bool) -> None:
    buf = path.read_bytes()
    assert _regex_lines(buf), "a fixture without trigger lines tests nothing"
    for sample in (buf, PROGRESS, b""):
        assert _candidate_lines(buf, sample, vectorised) == _regex_lines(buf), path.name


@pytest.mark.parametrize("vectorised", PATHS)
@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(
        st.one_of(
            st.sampled_from([p.encode() for p in TRIGGER_PHRASES]),
            st.binary(max_size=40),
            st.sampled_from([b"\n", b" ", b"_", b"  ", b"E", b"=="]),
        ),
        max_size=40,
    ),
    sample=st.sampled_from([b"", PROGRESS, b"E   s ==___ node down\n" * 50]),
)
def test_random_mixtures(parts: list[bytes], sample: bytes, vectorised: bool) -> None:
    buf = b"".join(parts)
    assert _candidate_lines(buf, sample, vectorised) == _regex_lines(buf)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_both_paths_give_the_same_scan(path: Path) -> None:
    if prefilter.np is None:
        pytest.skip("numpy not installed: the path without it is the only one")
    data = path.read_bytes()
    fast = scan_stream(io.BytesIO(data), "x", prefilter.candidates_for(data[: 2 << 20], True))
    plain = scan_stream(io.BytesIO(data), "x", prefilter.candidates_for(data[: 2 << 20], False))
    assert plain == fast


def test_without_numpy_installed() -> None:
    """The package imports and analyzes every fixture the same with numpy unimportable."""
    argv = ["analyze", *map(str, FIXTURES), "--format", "json"]
    blocked = (
        "import sys; sys.modules['numpy'] = None; "
        "from forensics.analyze.logs import prefilter; assert prefilter.np is None; "
        "sys.argv[0] = 'forensics'; from forensics.cli import main; main()"
    )
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    without = subprocess.run(
        [sys.executable, "-c", blocked, *argv], capture_output=True, env=env, check=False
    )
    assert without.returncode == 0, without.stderr.decode()
    assert b'"incidents"' in without.stdout
    default = subprocess.run(
        [sys.executable, "-m", "forensics", *argv], capture_output=True, env=env, check=False
    )
    assert default.returncode == 0, default.stderr.decode()
    assert without.stdout == default.stdout


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=70_000), st.integers(0, 70_000), st.integers(0, 70_000))
def test_count_newlines(data: bytes, a: int, b: int) -> None:
    start, end = sorted((min(a, len(data)), min(b, len(data))))
    assert prefilter.count_newlines(data, start, end) == data.count(b"\n", start, end)


def test_no_trigger_phrase_is_made_of_digits_only() -> None:
    # Every pair of digits is common in a timestamped log, so the prefilter would stop at
    # nearly every line: the 300 MB benchmark went from 2x to 16x grep with four such phrases.
    from forensics.analyze.logs.patterns import TRIGGER_PHRASES

    assert [p for p in TRIGGER_PHRASES if not p.strip("-0123456789 ")] == []
