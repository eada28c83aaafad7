"""The vectorised prefilter finds exactly what the regex finds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forensics.analyze.logs import prefilter
from forensics.analyze.logs.patterns import TRIGGER_BYTES, TRIGGER_PHRASES

LOGS = Path(__file__).parent.parent / "fixtures" / "logs"

pytestmark = pytest.mark.skipif(prefilter.np is None, reason="numpy not installed")


def _regex_hits(buf: bytes) -> list[int]:
    # Every start offset, overlapping ones included, as the vectorised path reports them.
    return [p for p in range(len(buf)) if TRIGGER_BYTES.match(buf, p)]


def test_phrases_are_long_enough_for_the_four_byte_key() -> None:
    assert all(len(p.encode()) >= 4 for p in TRIGGER_PHRASES)


def test_fixtures() -> None:
    for path in LOGS.glob("*.log"):
        buf = path.read_bytes()
        assert list(prefilter.hits(buf, len(buf))) == _regex_hits(buf), path.name


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([p.encode() for p in TRIGGER_PHRASES]), st.binary(max_size=40)),
        max_size=40,
    )
)
def test_random_mixtures(parts: list[bytes]) -> None:
    buf = b"\n".join(parts) + b"\n" + b"x" * 64
    assert list(prefilter.hits(buf, len(buf))) == _regex_hits(buf)


def test_regex_fallback_gives_the_same_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from forensics.analyze.logs.reader import scan_stream

    data = (LOGS / "story000_robin_keyerror_714.log").read_bytes()
    fast = scan_stream(io.BytesIO(data), "x")
    monkeypatch.setattr(prefilter, "_TABLES", None)
    assert scan_stream(io.BytesIO(data), "x") == fast


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=70_000), st.integers(0, 70_000), st.integers(0, 70_000))
def test_count_newlines(data: bytes, a: int, b: int) -> None:
    start, end = sorted((min(a, len(data)), min(b, len(data))))
    assert prefilter.count_newlines(data, start, end) == data.count(b"\n", start, end)
