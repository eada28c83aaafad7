"""A crash whose native stack is all runtime (libc under ctypes) is shown, not blamed."""

from __future__ import annotations

from forensics.analyze.native import NativeDeath, apply_native
from forensics.model import Frame, Incident, Source, Stack, Triage
from forensics.render.html import render_html


def _incident(library: str) -> Incident:
    frame = Frame(name="__strlen_evex", file=None, line=None, native=True, library=library)
    death = NativeDeath(pid=7, signal="SIGSEGV", method="pystack", faulting=frame, suspect=frame)
    death.stacks = [Stack(pid=7, thread="crashed", frames=[frame], method="pystack")]
    death.library = library
    incident = Incident(id="I1", cause="native-crash", confidence="high", summary="s")
    apply_native(incident, death)
    return incident


def test_a_crash_inside_libc_is_not_filed_against_libc() -> None:
    incident = _incident("libc.so.6")
    assert incident.extra["native"]["runtime_only"] is True
    html = render_html(Triage(source=Source("bundle", ["b"]), incidents=[incident]))
    assert "file the crash against it" not in html
    assert "File the crash against the code that called it" in html


def test_a_crash_inside_an_extension_is_filed_against_it() -> None:
    incident = _incident("libcrashlib.so")
    assert incident.extra["native"]["runtime_only"] is False
    assert "file the crash against it" in render_html(
        Triage(source=Source("bundle", ["b"]), incidents=[incident])
    )
