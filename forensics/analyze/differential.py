"""What else an incident could be, and why not: one rule set for bundles and raw logs.

A worker that dies without a word fits several causes: a native crash whose dump was lost, the
kernel's OOM killer, a kill from outside, a library calling ``os._exit``, or pytest-timeout's
*thread* method, which ends a hung worker with ``os._exit(1)`` and whose stack dump never
reaches the xdist controller.  Each source fills a :class:`DeathFacts` with what it knows; this
module weighs every cause against those facts and says, per cause, the evidence for and against
and a verdict.  The incident's confidence follows from the verdicts: one cause most likely and
every other ruled out is high; another one left open makes it medium; no cause standing out is
low.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MOST_LIKELY = "most likely"
POSSIBLE = "possible"
NOT_EXCLUDED = "not excluded"
RULED_OUT = "ruled out"
VERDICT_ORDER = {MOST_LIKELY: 0, POSSIBLE: 1, NOT_EXCLUDED: 2, RULED_OUT: 3}
CONFIDENCE_ORDER = {"high": 0, "medium": 1, "low": 2}
NATIVE_SIGNALS = {"SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS", "SIGTRAP"}
KILL_SIGNALS = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT"}
# A thread-method timer that fired has let the test run at least this share of its timeout
# (the same slack the bundle side allows for clock and start-up differences).
TIMER_SLACK = 0.8
DEATH_CAUSES = ("native-crash", "oom-kill", "external-kill", "unexpected-exit", "hang", "unknown")


@dataclass
class DeathFacts:
    """What a source knows about one process death.  ``None`` means "not known"."""

    source: str  # "bundle" | "log"
    worker: bool = True  # an xdist worker the controller reported down ("node down")
    # How it ended: observed by the supervisor (bundle), or reported by the log.
    status_observed: bool = False
    signal: str | None = None
    exit_code: int | None = None
    fault_dump: bool = False  # a faulthandler "Fatal Python error" block for this process
    native_abort: str | None = None  # "Rust panic: ...", "C++ terminate: ..."
    oom: str | None = None  # the line that names the OOM kill
    # Another program's OOM kill (node, a database): memory ran out, but not in this process.
    oom_elsewhere: str | None = None
    oom_readable: bool = False  # the kernel log or cgroup counters could be read
    sender: str | None = None  # who sent the signal, when known
    # A SIGKILL nothing announced: no CI cancel or timeout, no timeout tool, no SIGTERM first
    # and no sender. On Linux the kernel's OOM killer is by far the most common sender of such a
    # kill (a CI cancel, a timeout tool or a supervisor sends SIGINT/SIGTERM first and says so).
    unannounced_kill: bool = False
    kernel_lines: list[str] = field(default_factory=list)
    kernel_fault: str | None = None  # the kernel's segfault/trap line for it, in words
    # pytest-timeout: from the session header (log) or the agent's timeout-armed record.
    timeout_s: float | None = None
    timeout_method: str | None = None
    timeout_plugin: bool | None = None  # loaded (plugins line), not loaded, unknown
    timeout_from: str | None = None  # what gave ``timeout_s`` when not the header or the agent
    timer_dump: bool = False  # the agent's dump taken just before the thread timer fired
    ran_s: float | None = None  # how long the test ran before the death
    ran_from: str | None = None  # a log's figure: "durations table", "JUnit time", "live log"
    ran_at_least: bool = False  # ``ran_s`` is a lower bound (live-log times)
    # Log timing: silence of the worker (lower bound) and time since the tests began (upper).
    silent_s: float | None = None
    silent_of: str | None = None
    since_begin_s: float | None = None
    # No progress seen by something other than pytest-timeout (forensics' stall watch, the
    # silence before a CI cancel, a faulthandler_timeout dump), and who then ended the run.
    stalled: str | None = None
    ended_by: str | None = None


@dataclass
class Hypothesis:
    cause: str
    verdict: str
    for_: list[str] = field(default_factory=list)
    against: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cause": self.cause,
            "verdict": self.verdict,
            "for": self.for_,
            "against": self.against,
        }


def _s(value: float) -> str:
    return f"{value:.1f} s"


def _ran_text(f: DeathFacts) -> str:
    """How long the test ran, with the figure's source: what a reader checks first."""
    ran = f.ran_s if f.ran_s is not None else 0.0
    if f.ran_from is None:
        return f"the test had run {_s(ran)} when the process ended"
    limit = f" against a {f.timeout_s:g} s timeout" if f.timeout_s is not None else ""
    if f.ran_at_least:
        return f"it logged for {ran:g} s of its run{limit} (live-log times)"
    return f"it ran {ran:.2f} s{limit} ({f.ran_from})"


def _ran_full(f: DeathFacts) -> bool:
    """The test's run is known to have lasted about its timeout."""
    return f.ran_s is not None and f.timeout_s is not None and f.ran_s >= f.timeout_s * TIMER_SLACK


def _native_crash(f: DeathFacts, timer: Hypothesis) -> Hypothesis:
    h = Hypothesis("native-crash", NOT_EXCLUDED)
    if f.fault_dump:
        h.for_.append("faulthandler printed a fatal error for this process")
    if f.signal in NATIVE_SIGNALS:
        h.for_.append(f"it died of {f.signal}")
    if f.native_abort:
        h.for_.append(f"{f.native_abort} just before")
    if f.kernel_fault:
        h.for_.append(f.kernel_fault)
    if f.source == "log" and f.worker and not f.status_observed:
        h.for_.append(
            "the worker died without Python teardown ('node down: Not properly terminated'), "
            "as a process killed by a fatal signal does"
        )
    if h.for_ and (f.fault_dump or f.signal in NATIVE_SIGNALS or f.native_abort):
        h.verdict = MOST_LIKELY
    elif f.oom and f.signal == "SIGKILL":
        h.against.append("the kernel's OOM killer ended it with SIGKILL, which no crash sends")
        h.verdict = RULED_OUT
    elif f.signal is not None:
        h.against.append(f"it died of {f.signal}, not of a crash signal")
        h.verdict = RULED_OUT
    elif f.status_observed and f.exit_code is not None:
        h.against.append(f"no fatal signal: it exited with status {f.exit_code}")
        h.verdict = RULED_OUT
    else:
        h.against.append(
            "no fault dump and no signal in the log"
            if f.source == "log"
            else "no fault dump and no exit signal recorded"
        )
        # A silent worker death is a crash's signature too, unless the timer explains it.
        timer_open = timer.verdict in (MOST_LIKELY, POSSIBLE) and f.timeout_method == "thread"
        if h.for_ and not timer_open:
            h.verdict = POSSIBLE
    if _timer_fired(f) and h.verdict != MOST_LIKELY:
        h.against.append(f"{_timer_text(f)} shows Python still running the test")
        h.verdict = RULED_OUT
    return h


def _timer_fired(f: DeathFacts) -> bool:
    return f.timer_dump and f.signal is None and not f.fault_dump


def _timer_text(f: DeathFacts) -> str:
    return (
        "the agent's stack dump just before pytest-timeout's timer"
        if f.source == "bundle"
        else "pytest-timeout's stack dump at the deadline"
    )


def _oom_kill(f: DeathFacts) -> Hypothesis:
    h = Hypothesis("oom-kill", NOT_EXCLUDED)
    if f.oom:
        h.for_.append(f.oom)
        h.verdict = MOST_LIKELY if f.signal in (None, "SIGKILL") else POSSIBLE
        return h
    if f.signal is not None and f.signal != "SIGKILL":
        h.against.append(f"it died of {f.signal}; the OOM killer sends SIGKILL")
        h.verdict = RULED_OUT
    elif f.status_observed and f.exit_code is not None and f.signal is None:
        h.against.append(f"it exited with status {f.exit_code}; the OOM killer sends SIGKILL")
        h.verdict = RULED_OUT
    elif _timer_fired(f):
        h.against.append(f"{_timer_text(f)}: the timer ended it")
        h.verdict = RULED_OUT
    elif f.oom_readable:
        h.against.append("no OOM kill in the kernel log or the cgroup's counters")
        h.verdict = RULED_OUT
    elif _unannounced(f):
        h.for_.append(
            "a SIGKILL with no cancel, timeout or sender in the log: on Linux most often the "
            "kernel's OOM killer"
        )
        h.against.append(
            "no OOM kill of a test process in the log"
            if f.oom_elsewhere
            else "no OOM line in the log to confirm it"
        )
        h.verdict = POSSIBLE
    elif f.oom_elsewhere:
        h.against.append("no OOM kill of a test process in the log")
    else:
        h.against.append(
            "no OOM line in the log (a CI log seldom holds the kernel's messages)"
            if f.source == "log"
            else "the kernel log and OOM counters could not be read"
        )
    if f.oom_elsewhere and h.verdict != RULED_OUT:
        # A sign, never proof: the same shortage may have killed this process unlogged.
        h.for_.append(f.oom_elsewhere)
        h.verdict = POSSIBLE
    return h


def _unannounced(f: DeathFacts) -> bool:
    return f.unannounced_kill and f.signal == "SIGKILL" and not f.sender and not f.oom


def _external_kill(f: DeathFacts) -> Hypothesis:
    h = Hypothesis("external-kill", NOT_EXCLUDED)
    if f.stalled is not None and f.ended_by is not None:
        h.against.append(f"{f.ended_by} ended it because it made no progress")
        h.verdict = RULED_OUT
        return h
    if f.signal in KILL_SIGNALS:
        h.for_.append(f"it died of {f.signal}" + (f", sent by {f.sender}" if f.sender else ""))
        if f.oom:
            h.against.append("the OOM killer sent it")
            h.verdict = RULED_OUT
        elif _unannounced(f):
            h.against.append(
                "nothing in the log announced a kill (a CI cancel or a timeout tool says so and "
                "sends SIGTERM first)"
            )
            h.verdict = POSSIBLE
        else:
            h.verdict = MOST_LIKELY
        return h
    if f.signal is not None:
        h.against.append(f"it died of {f.signal}, which a crash raises")
        h.verdict = RULED_OUT
    elif f.status_observed and f.exit_code is not None:
        h.against.append(f"no signal: it exited with status {f.exit_code}")
        h.verdict = RULED_OUT
    elif _timer_fired(f):
        h.against.append(f"{_timer_text(f)}: the timer ended it")
        h.verdict = RULED_OUT
    else:
        h.against.append("no kill signal in the log")
    return h


def _timeout_exit(f: DeathFacts) -> Hypothesis:
    """pytest-timeout (thread method) ended the test's process with os._exit(1)."""
    h = Hypothesis("hang", NOT_EXCLUDED)
    if f.stalled is not None:
        h.for_.append(f.stalled)
        h.verdict = MOST_LIKELY
        return h
    limit = f.timeout_s
    armed = f"pytest-timeout {_s(limit)}" if limit is not None else "pytest-timeout"
    if f.timeout_method == "thread":
        h.for_.append(
            f"{armed}, thread method: it ends a hung worker with os._exit(1), and its stack dump "
            "never reaches the xdist controller"
        )
    if f.timer_dump:
        h.for_.append(
            "the agent dumped the stacks just before the timer fired"
            if f.source == "bundle"
            else "pytest-timeout printed its stack dump for the test"
        )
    # What rules it out.
    if f.fault_dump or f.signal is not None:
        h.against.append(
            "a fatal signal ended it; the thread method exits with status 1"
            if f.signal
            else "faulthandler printed a fatal error"
        )
        h.verdict = RULED_OUT
        return h
    if f.timer_dump:
        if f.ran_s is not None:
            h.for_.append(_ran_text(f))
        if f.silent_s is not None and limit is not None and f.silent_s >= limit * TIMER_SLACK:
            h.for_.append(f"the log printed nothing for {_s(f.silent_s)} before the dump")
        h.verdict = MOST_LIKELY
        return h
    if f.status_observed and f.exit_code not in (None, 1):
        h.against.append(f"it exited with status {f.exit_code}; the thread method exits with 1")
        h.verdict = RULED_OUT
        return h
    if f.timeout_plugin is False:
        h.against.append("pytest-timeout is not among the session's plugins")
        h.verdict = RULED_OUT
        return h
    if f.timeout_method is None and f.timeout_from is not None:
        h.for_.append(f"{f.timeout_from} shows pytest-timeout armed ({_s(limit or 0.0)})")
        h.against.append(
            "no session header names the method: only the thread method ends the worker"
        )
    if f.timeout_method is not None and f.timeout_method != "thread":
        h.against.append(
            f"pytest-timeout's {f.timeout_method} method fails the test; it does not end the worker"
        )
        h.verdict = RULED_OUT
        return h
    if limit is not None:
        ran = f.ran_s if not f.ran_at_least else None
        bound = ran if ran is not None else f.since_begin_s
        if bound is not None and bound < limit * TIMER_SLACK:
            source = f" ({f.ran_from})" if ran is not None and f.ran_from else ""
            h.against.append(
                f"it died {_s(bound)} into the test, before the {_s(limit)} timer{source}"
                if ran is not None
                else f"it died {_s(bound)} after the tests began, before the {_s(limit)} timer"
            )
            h.verdict = RULED_OUT
            return h
        if f.ran_s is not None:
            h.for_.append(_ran_text(f))
        if f.silent_s is not None:
            what = "the worker" if f.silent_of == "worker" else "the log"
            if f.silent_s >= limit * TIMER_SLACK:
                h.for_.append(f"{what} printed nothing for {_s(f.silent_s)} before it went down")
            elif f.silent_of == "worker":
                h.against.append(
                    f"the worker printed {_s(f.silent_s)} before it went down, less than the "
                    f"{_s(limit)} timeout"
                )
                h.verdict = RULED_OUT
                return h
    if f.timeout_method == "thread":
        timed = f.silent_s is not None and limit is not None and f.silent_s >= limit * TIMER_SLACK
        timed = timed or (f.ran_s is not None and f.status_observed)
        timed = timed or (f.source == "log" and _ran_full(f))
        h.verdict = MOST_LIKELY if timed else POSSIBLE
        if not timed and f.since_begin_s is not None:
            h.for_.append(f"it went down {_s(f.since_begin_s)} after the tests began")
            h.against.append(
                "the worker's own last line is not dated (run pytest with -v to date it), so "
                "the log cannot show it silent for the timeout"
            )
        elif not timed:
            h.against.append(
                "the log has no per-line times to show the worker silent for the timeout"
                if f.source == "log"
                else "no record of how long the test ran"
            )
    elif f.source == "log" and f.worker and f.timeout_from is not None:
        h.verdict = POSSIBLE
    elif f.source == "log" and f.worker and f.timeout_plugin:
        h.for_.append("pytest-timeout is among the session's plugins")
        h.against.append(
            "the header shows no timeout: only a @pytest.mark.timeout marker would have armed one"
        )
    elif f.source == "log" and f.worker:
        h.for_.append(
            "a worker ended by pytest-timeout's thread method goes down exactly like this, "
            "with no dump in the controller's output"
        )
        h.against.append("the log has no session header: whether pytest-timeout was on is unknown")
        h.verdict = POSSIBLE
    elif f.source == "bundle" and not f.status_observed and f.ran_s is None:
        h.against.append("nothing recorded about this process's test or a timer")
    else:
        h.against.append("no pytest-timeout timer was armed for the test")
        h.verdict = RULED_OUT
    return h


def _unexpected_exit(f: DeathFacts, timer: Hypothesis) -> Hypothesis:
    h = Hypothesis("unexpected-exit", NOT_EXCLUDED)
    if f.signal is not None or f.fault_dump:
        h.against.append("a signal ended it, not an exit of its own")
        h.verdict = RULED_OUT
        return h
    if f.status_observed and f.exit_code is not None:
        h.for_.append(f"it exited with status {f.exit_code} mid-test, without a signal")
        if timer.verdict == MOST_LIKELY:
            h.against.append("the exit came at pytest-timeout's deadline: the timer's os._exit(1)")
            h.verdict = RULED_OUT
        else:
            h.verdict = MOST_LIKELY
        return h
    if _timer_fired(f):
        h.against.append(f"{_timer_text(f)}: the timer ended it")
        h.verdict = RULED_OUT
        return h
    if timer.verdict == MOST_LIKELY and f.stalled is not None:
        h.against.append(f"{f.ended_by or 'the stall'} ended it, not an exit of its own")
        h.verdict = RULED_OUT
        return h
    h.against.append(
        "the log does not say how the worker ended" if f.source == "log" else "no exit status"
    )
    return h


def weigh(facts: DeathFacts) -> list[Hypothesis]:
    """Every death cause, with the evidence for and against it; most likely first."""
    timer = _timeout_exit(facts)
    found = [
        _native_crash(facts, timer),
        _oom_kill(facts),
        _external_kill(facts),
        timer,
        _unexpected_exit(facts, timer),
    ]
    _silent_worker(facts, found)
    return sorted(found, key=lambda h: VERDICT_ORDER[h.verdict])


def _silent_worker(f: DeathFacts, found: list[Hypothesis]) -> None:
    """A worker gone without a word: a crash is possible, and so are SIGKILL and os._exit.

    'Not properly terminated' says only that the worker ended without Python's teardown, which
    the OOM killer's SIGKILL (faulthandler cannot report it) and os._exit() do as surely as a
    crash signal (which under pytest >= 5, faulthandler on, most often leaves a 'Fatal Python
    error' dump the log does not have here). The source's reading stays, at low confidence.
    """
    native, oom, _kill, _timer, exit_ = found
    if native.verdict != POSSIBLE or f.source != "log" or not f.worker:
        return
    if f.signal is not None or f.fault_dump or f.native_abort or f.kernel_fault:
        return
    if oom.verdict in (NOT_EXCLUDED, POSSIBLE):  # POSSIBLE: another program's OOM kill
        oom.for_.append("a SIGKILL (the OOM killer's) ends a worker this way, with no dump")
        oom.verdict = POSSIBLE
    if exit_.verdict == NOT_EXCLUDED:
        exit_.for_.append("os._exit() ends a worker this way too, without Python teardown")
        exit_.verdict = POSSIBLE


def conclude(hypotheses: list[Hypothesis], prefer: str | None = None) -> tuple[str, str]:
    """The cause and confidence the verdicts support.

    ``prefer`` breaks a tie between causes of the same verdict (the source's own reading).
    """
    if not hypotheses:
        return prefer or "unknown", "low"
    best = min(VERDICT_ORDER[h.verdict] for h in hypotheses)
    top = [h for h in hypotheses if VERDICT_ORDER[h.verdict] == best]
    pick = next((h for h in top if h.cause == prefer), top[0])
    if pick.verdict == RULED_OUT or (pick.verdict == NOT_EXCLUDED and pick.cause != prefer):
        return "unknown", "low"  # nothing speaks for any cause
    others = [h for h in hypotheses if h is not pick]
    if pick.verdict == MOST_LIKELY:
        if all(h.verdict == RULED_OUT for h in others):
            return pick.cause, "high"
        if any(h.verdict in (MOST_LIKELY, POSSIBLE) for h in others):
            return pick.cause, "low"
        return pick.cause, "medium"
    return pick.cause, "low"


def lower(current: str, derived: str) -> str:
    """The less confident of two confidences: the differential never raises a source's."""
    return max(current, derived, key=lambda c: CONFIDENCE_ORDER.get(c, 2))


def apply(incident: Any, facts: DeathFacts) -> list[Hypothesis]:
    """Decide *incident*'s cause from the differential and attach it (``extra["differential"]``).

    This is the one classifier of deaths for bundles and logs alike: the source's own reading
    (``incident.cause``) only breaks a tie, and its confidence is lowered to what the
    differential supports, never raised.
    """
    hypotheses = weigh(facts)
    cause, confidence = conclude(hypotheses, prefer=incident.cause)
    if cause != incident.cause:
        incident.cause, incident.confidence = cause, confidence
    else:
        incident.confidence = lower(incident.confidence, confidence)
    incident.extra["differential"] = [h.to_dict() for h in hypotheses]
    return hypotheses


def reported_failure(incident: Any) -> None:
    """The differential of a failure the process reported itself (it did not die of it)."""
    if "differential" in incident.extra or incident.cause in DEATH_CAUSES:
        return
    first = incident.evidence[0].excerpt.splitlines()[0][:200] if incident.evidence else ""
    rows = [Hypothesis(incident.cause, MOST_LIKELY, [first] if first else [])]
    if incident.cause in ("python-exception", "infrastructure"):
        other = "infrastructure" if incident.cause == "python-exception" else "python-exception"
        rows.append(
            Hypothesis(
                other,
                NOT_EXCLUDED if incident.cause == "infrastructure" else RULED_OUT,
                against=[
                    "no network or service error in the message"
                    if other == "infrastructure"
                    else "the message names a network or service error"
                ],
            )
        )
        rows.append(
            Hypothesis(
                "native-crash",
                RULED_OUT,
                against=["the process reported the failure itself and went on"],
            )
        )
    incident.extra["differential"] = [h.to_dict() for h in rows]
