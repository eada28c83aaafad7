"""Frames and stacks as a bundle's JSON records them (``stacks/*.evidence.json``,
``stacks/*.native.json``), read back: hostile input, every field checked."""

from __future__ import annotations

from typing import Any

from forensics.model import Frame, Stack


def _text(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _int(raw: dict[str, Any], key: str) -> int | None:
    value = raw.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def frame_from_record(raw: dict[str, Any], default_name: str = "?") -> Frame:
    return Frame(
        name=str(raw.get("name") or default_name),
        file=_text(raw, "file"),
        line=_int(raw, "line"),
        native=bool(raw.get("native")),
        library=_text(raw, "library"),
    )


def frames_from_record(raw: dict[str, Any], default_name: str = "?") -> list[Frame]:
    """The frames of a thread or stack record (its ``frames`` list)."""
    frames = raw.get("frames")
    if not isinstance(frames, list):
        return []
    return [frame_from_record(f, default_name) for f in frames if isinstance(f, dict)]


def stack_from_record(raw: dict[str, Any]) -> Stack:
    return Stack(
        pid=_int(raw, "pid"),
        thread=str(raw.get("thread") or "?"),
        frames=frames_from_record(raw),
        method=_text(raw, "method"),
        state=_text(raw, "state"),
        tid=_int(raw, "tid"),
        thread_name=_text(raw, "thread_name"),
        holds_gil=raw.get("holds_gil") is True,
    )
