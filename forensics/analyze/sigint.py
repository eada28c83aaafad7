"""Why a process did not react to Ctrl-C, in words, from the facts ``wrap`` recorded
(:func:`forensics.collect.procinfo.sigint_facts`)."""

from __future__ import annotations

from typing import Any


def d_state_reason(pid: object, wchan: object, d_threads: list[int], whole: bool) -> str:
    """The one sentence for a process stuck in the kernel (the hang view says it too)."""
    place = f" in {wchan}" if wchan else ""
    who = f"pid {pid}"
    if not whole and d_threads:
        plural = "s" if len(d_threads) > 1 else ""
        who += f" (thread{plural} {', '.join(str(t) for t in d_threads)})"
    return (
        f"{who} is in D-state (uninterruptible sleep{place}): no signal, not even SIGKILL, "
        "takes effect until the kernel call returns"
    )


def _tids(value: object) -> list[int]:
    return [t for t in value if isinstance(t, int)] if isinstance(value, list) else []


def sigint_reasons(facts: object) -> list[str]:
    """Plain-English reasons why the process would not react to SIGINT (may be empty).

    *facts* is a bundle's record: a dict from this version, a list of sentences from a bundle
    written before collectors recorded facts (returned as they are), anything else is ignored.
    """
    if isinstance(facts, list):
        return [r for r in facts if isinstance(r, str)]
    if not isinstance(facts, dict):
        return []
    f: dict[str, Any] = facts
    pid = f.get("pid")
    if f.get("exists") is False:
        return [f"pid {pid} no longer exists"]
    state = f.get("state")
    if state == "Z":
        return [f"pid {pid} has already exited (zombie): its parent has not reaped it"]
    reasons: list[str] = []
    if state in ("T", "t"):
        reasons.append(
            f"pid {pid} is stopped ({f.get('state_meaning')}): signals other than SIGKILL wait "
            "until it gets SIGCONT"
        )
    if f.get("d_state"):
        reasons.append(d_state_reason(pid, f.get("wchan"), _tids(f.get("d_threads")), state == "D"))
    if f.get("ignored"):
        reasons.append(f"SIGINT is ignored (SIG_IGN) in pid {pid}")
    live = _tids(f.get("live_threads"))
    blocked = set(_tids(f.get("blocked_threads")))
    pending = set(_tids(f.get("pending_threads")))
    for tid in live:
        if tid in pending and tid in blocked:
            reasons.append(f"SIGINT is blocked in thread {tid} and pending")
    shared = bool(f.get("shared_pending"))
    if live and all(t in blocked for t in live):
        if shared:
            reasons.append(
                f"SIGINT is pending for pid {pid} and blocked in every thread "
                f"({', '.join(str(t) for t in live)}): it is delivered only once a thread "
                "unblocks it"
            )
        elif not pending:
            reasons.append(f"SIGINT is blocked in every thread of pid {pid}")
    elif shared:
        reasons.append(f"SIGINT is pending for pid {pid} but not yet delivered")
    wakeup = f.get("full_wakeup")
    for pipe in wakeup if isinstance(wakeup, list) else []:  # a hostile bundle's any JSON
        if not isinstance(pipe, dict):
            continue
        if pipe.get("kind") == "pipe":
            reasons.append(
                f"the signal wakeup pipe fd {pipe.get('fd')} of pid {pid} is full "
                f"({pipe.get('queued')}/{pipe.get('capacity')} bytes): the C signal handler's "
                "write fails with EAGAIN, so an event loop waiting on that fd (trio, asyncio) is "
                "never woken to run the Python handler"
            )
        elif pipe.get("kind") == "socket":
            reasons.append(
                f"the Unix socket fd {pipe.get('fd')} of pid {pid} cannot be written (its peer "
                "holds unread data): if it is the signal wakeup fd (asyncio uses a socketpair), "
                "the C signal handler's write fails with EAGAIN and the event loop is never woken"
            )
    if not reasons and f.get("caught"):
        reasons.append(
            f"pid {pid} has a SIGINT handler installed; Python runs it only in the main thread "
            "between bytecodes, so a main thread blocked in native code (see its stack) or a "
            "handler that swallows KeyboardInterrupt keeps it running"
        )
    return reasons
