"""A runtime's last words (a Rust panic, a C++ terminate, an uncaught Objective-C exception, a
macOS crash report) that no dead worker or fault dump claimed: which of them are one death,
whether the process died of them or only printed them, and the incident each death becomes."""

from __future__ import annotations

from forensics.analyze.logs.death_lines import RUST_ABORTING as ABORTING
from forensics.analyze.logs.evidence import ev
from forensics.analyze.logs.findings import NativeAbort
from forensics.analyze.logs.scan import LogScan
from forensics.analyze.logs.signatures import normalize
from forensics.model import Incident, Stack

# What each runtime's last words are called in a summary (logs/deaths.py and scan/last_words.py
# find them).
NATIVE_LABEL = {
    "rust-panic": "Rust panic",
    "rust-fatal": "Rust fatal runtime error",
    "rust-abort": "Rust runtime abort",
    "cpp-terminate": "C++ terminate",
    "cxx-uncaught": "C++ uncaught exception (libc++abi)",
    "ns-exception": "uncaught Objective-C exception",
    "objc-fork": "objc fork-safety abort",
    "macos-crash-report": "macOS crash report",
}
NATIVE_WINDOW = 300  # lines from a panic/terminate to the crash it explains


def _one_death(group: list[NativeAbort], native: NativeAbort) -> bool:
    """A Rust panic and what follows it (the "cannot unwind" panic, the runtime's abort) are
    one death; so are a crash report and the exception it quotes."""
    last = group[-1]
    if native.line - last.line > NATIVE_WINDOW:
        return False
    rust = ("rust-panic", "rust-fatal", "rust-abort")
    return last.kind in rust and native.kind in rust


def _aborts(scan: LogScan, group: list[NativeAbort]) -> bool:
    """Whether the process died of it, not only printed it.

    A panic PyO3 catches becomes a PanicException in Python and the run goes on; a panic that
    cannot unwind, a second panic, Rust's own "fatal runtime error" or the shell's report of
    SIGABRT mean the process aborted.  Every other runtime here aborts by itself.
    """
    if any(n.kind != "rust-panic" or ABORTING.search(n.message) for n in group):
        return True
    # The shell's SIGABRT soon after the panic, with no test result between them: a result
    # means pytest went on after the panic, so the abort is some other process's.
    first, last = group[0].line, group[-1].line
    return any(
        k.signal == "SIGABRT"
        and first <= k.line <= last + NATIVE_WINDOW
        and not any(last < p.line < k.line for p in scan.progress)
        for k in scan.kills
    )


def native_incidents(scan: LogScan, orphans: list[NativeAbort]) -> list[tuple[int, Incident]]:
    """Runtime deaths no dead worker or fault dump stands behind: a serial run, a subprocess."""
    groups: list[list[NativeAbort]] = []
    for native in orphans:
        if groups and _one_death(groups[-1], native):
            groups[-1].append(native)
        else:
            groups.append([native])
    found = []
    for group in groups:
        if not _aborts(scan, group):
            continue
        head = group[0]
        frames = next((n.frames for n in group if n.frames), [])
        label = NATIVE_LABEL.get(head.kind, head.kind)
        if head.location:
            label += f" at {head.location}"
        test = next((n.test for n in group if n.test), None)
        running = f" while running {test}" if test else ""
        signal = head.signal or "SIGABRT"
        message = f": {head.message}" if head.message else ""
        incident = Incident(
            id="",
            cause="native-crash",
            confidence="medium",
            signal=signal,
            summary=f"Process aborted ({signal}) after {label}{message}{running}"[:300],
            worker=head.worker,
            test=test,
            native_library=next((n.library for n in group if n.library), None),
            evidence=[ev(scan, n.line, n.excerpt) for n in group[:6]],
            stacks=[Stack(pid=None, thread=f"{head.kind} backtrace", frames=frames, method="log")]
            if frames
            else [],
            signature=normalize(f"native-crash {signal} {head.kind} {head.message}"),
        )
        found.append((head.line, incident))
    return found
