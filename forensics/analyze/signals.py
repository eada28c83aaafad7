"""Who sent a signal: the captured signals (``signals.jsonl``) read against the run's processes.

A death by SIGKILL or SIGTERM is attributed to its sender: a process of the run (its argv, its
worker and the test it was running then), a process outside the run, the kernel's OOM killer,
forensics' own escalation, or pytest-xdist shutting its workers down.  Where no signal was
captured (no root), the journal's own records still name forensics' and the OOM killer's kills.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from forensics.analyze.bundle_source import BundleData, ProcessRecord
from forensics.bundle import read_jsonl
from forensics.model import Evidence, Incident, SignalMark

SIGNALS = "signals.jsonl"
# Signals worth drawing and attributing; the rest (SIGUSR1 on every test, SIGALRM timers) are
# kept in the bundle but would bury the kills on a timeline.
KILLS = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGABRT", "SIGSEGV", "SIGBUS"}
MAX_MARKS = 500
# A sender's record a little after the exit record still counts (the journal's clocks differ).
_SLACK_S = 1.0


@dataclass
class SignalRecord:
    t: float
    event: str
    signal: str
    code: str
    pid: int
    sender_pid: int | None = None
    sender_comm: str | None = None
    sender_argv: list[str] = field(default_factory=list)
    result: str | None = None
    disposition: str | None = None
    handler: str | None = None
    handler_object: str | None = None
    count: int = 1


class SignalLog:
    """The bundle's captured signals, read once."""

    def __init__(self, records: list[SignalRecord], captured: bool) -> None:
        self.records = records
        self.captured = captured
        self.by_receiver: dict[int, list[SignalRecord]] = {}
        for rec in records:
            self.by_receiver.setdefault(rec.pid, []).append(rec)

    @classmethod
    def load(cls, path: Path) -> SignalLog:
        file = path / SIGNALS
        if not file.is_file() or file.is_symlink():
            return cls([], False)
        records = []
        for raw in read_jsonl(file):
            rec = _record(raw)
            if rec is not None:
                records.append(rec)
        return cls(records, True)


def _record(raw: dict[str, Any]) -> SignalRecord | None:
    t, event, sig, pid = raw.get("t"), raw.get("event"), raw.get("signal"), raw.get("pid")
    if not isinstance(t, (int, float)) or not isinstance(pid, int) or not isinstance(sig, str):
        return None
    if event not in ("generate", "deliver"):
        return None
    sender = raw.get("sender_pid")
    argv = raw.get("sender_argv")

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    return SignalRecord(
        t=float(t),
        event=str(event),
        signal=sig,
        code=text("code") or "?",
        pid=pid,
        sender_pid=sender if isinstance(sender, int) else None,
        sender_comm=text("sender_comm"),
        sender_argv=[a for a in argv if isinstance(a, str)] if isinstance(argv, list) else [],
        result=text("result"),
        disposition=text("disposition"),
        handler=text("handler"),
        handler_object=text("handler_object"),
        count=raw["count"] if isinstance(raw.get("count"), int) else 1,
    )


@dataclass
class SenderFacts:
    """Who sent ``signal`` to ``pid``, and what that means for the death."""

    signal: str
    pid: int
    # "run" | "outside" | "kernel" | "oom-killer" | "forensics" | "xdist-shutdown" | "self"
    kind: str
    description: str
    time: float | None = None
    code: str | None = None
    result: str | None = None
    sender_pid: int | None = None
    sender_comm: str | None = None
    sender_argv: list[str] = field(default_factory=list)
    sender_worker: str | None = None
    sender_test: str | None = None
    # The sender is the dying process itself, one of its descendants, or the process running
    # the test that started it: the kill is the test's own doing.
    own_test_tree: bool = False
    # "signals.jsonl" when the kernel told us; "events.jsonl" / "kernel log" / "xdist" when
    # inferred from the journal without a captured signal.
    source: str = SIGNALS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def signal_sender(
    data: BundleData, pid: int, signal: str | None, log: SignalLog | None = None
) -> SenderFacts | None:
    """Who sent the signal that ended ``pid`` (None when nothing names a sender)."""
    if signal is None:
        return None
    log = log if log is not None else SignalLog.load(data.path)
    victim = data.processes.get(pid)
    died = victim.end if victim is not None else None
    generated = [
        r
        for r in log.by_receiver.get(pid, [])
        if r.event == "generate"
        and r.signal == signal
        and (died is None or r.t <= died + _SLACK_S)
        and r.result in (None, "delivered", "already-pending")
    ]
    if generated:
        return _from_record(data, generated[-1], victim)
    return _inferred(data, pid, signal, victim)


def _from_record(data: BundleData, rec: SignalRecord, victim: ProcessRecord | None) -> SenderFacts:
    facts = SenderFacts(
        signal=rec.signal,
        pid=rec.pid,
        kind="outside",
        description="",
        time=rec.t,
        code=rec.code,
        result=rec.result,
        sender_pid=rec.sender_pid,
        sender_comm=rec.sender_comm,
        sender_argv=rec.sender_argv,
    )
    sender = data.processes.get(rec.sender_pid) if rec.sender_pid is not None else None
    supervisor = data.manifest.get("supervisor_pid")
    if rec.code == "kernel" or rec.code.startswith(("SEGV_", "BUS_", "ILL_", "FPE_", "TRAP_")):
        if rec.signal == "SIGKILL" and _oom_killed(data, rec.pid):
            facts.kind, facts.description = "oom-killer", "the kernel's OOM killer"
        elif rec.code == "kernel":
            facts.kind = "kernel"
            facts.description = f"{rec.signal} from the kernel"
        else:
            facts.kind = "self"
            facts.description = f"{rec.signal} ({rec.code}): a fault in the process itself"
        facts.own_test_tree = facts.kind == "self"
        return facts
    if rec.sender_pid is not None and rec.sender_pid == supervisor:
        reason = _forensics_reason(data, rec)
        facts.kind = "forensics"
        facts.description = f"{rec.signal} from forensics' {reason}"
        return facts
    if sender is None:
        comm = rec.sender_comm or "?"
        argv = " ".join(rec.sender_argv)[:80]
        shown = f"{comm}: {argv}" if argv and not argv.startswith(comm) else (argv or comm)
        facts.description = f"{rec.signal} from pid {rec.sender_pid} ({shown}, outside the run)"
        return facts
    facts.kind = "run"
    facts.sender_argv = sender.argv or rec.sender_argv
    facts.sender_worker = sender.worker
    test = _test_at(sender, rec.t)
    facts.sender_test = test
    if rec.sender_pid == rec.pid:
        facts.kind = "self"
        facts.own_test_tree = True
    elif victim is not None:
        facts.own_test_tree = _related(data, sender, victim, test)
    if (
        victim is not None
        and victim.role == "worker"
        and sender.role == "controller"
        and sender.shutdown_at is not None
        and rec.t >= sender.shutdown_at - _SLACK_S
    ):
        facts.kind = "xdist-shutdown"
        facts.description = (
            f"{rec.signal} from pytest-xdist's shutdown (controller pid {sender.pid})"
        )
        return facts
    who = rec.sender_comm or (sender.argv[0] if sender.argv else "?")
    context = []
    if sender.worker:
        context.append(sender.worker)
    elif sender.role in ("controller", "single"):
        context.append("the pytest process")
    if test:
        context.append(f"running {test}")
    where = ", " + " ".join(context) if context else ""
    facts.description = f"{rec.signal} from pid {rec.sender_pid} ({who}{where})"
    if facts.kind == "self":
        facts.description = f"{rec.signal} sent by the process to itself" + (
            f" while running {test}" if test else ""
        )
    return facts


def _inferred(
    data: BundleData, pid: int, signal: str, victim: ProcessRecord | None
) -> SenderFacts | None:
    """No captured signal: what the journal itself says about a kill."""
    if signal == "SIGKILL" and _oom_killed(data, pid):
        return SenderFacts(
            signal, pid, "oom-killer", "the kernel's OOM killer", source="kernel log"
        )
    died = victim.end if victim is not None else None
    for sent in data.sent_signals:
        if sent.signal != signal:
            continue
        if died is not None and sent.t is not None and sent.t > died + _SLACK_S:
            continue
        targeted = pid in sent.pids or (
            sent.pgid is not None and victim is not None and _in_group(data, victim)
        )
        if targeted:
            reason = _reason_words(sent.reason)
            return SenderFacts(
                signal,
                pid,
                "forensics",
                f"{signal} from forensics' {reason}",
                time=sent.t,
                source="events.jsonl",
            )
    if victim is not None and victim.role == "worker" and victim.open_test is None:
        controller = next((r for r in data.processes.values() if r.role == "controller"), None)
        if (
            controller is not None
            and controller.shutdown_at is not None
            and died is not None
            and died >= controller.shutdown_at
        ):
            return SenderFacts(
                signal,
                pid,
                "xdist-shutdown",
                f"{signal} from pytest-xdist's shutdown",
                source="xdist",
            )
    return None


def killed_by_forensics(data: BundleData) -> set[int]:
    """Pids the supervisor itself sent SIGKILL (hang and timeout escalation)."""
    return {p for sent in data.sent_signals if sent.signal == "SIGKILL" for p in sent.pids}


def _oom_killed(data: BundleData, pid: int) -> bool:
    oom = data.system.get("oom")
    kills = oom.get("kills") if isinstance(oom, dict) else None
    return isinstance(kills, list) and any(
        isinstance(k, dict) and k.get("pid") == pid and k.get("ours") for k in kills
    )


_REASONS = {
    "stall": "hang escalation",
    "hang": "hang escalation",
    "hang-timeout": "hang escalation (--hang-timeout)",
    "run-timeout": "run timeout (--timeout)",
    "interrupt": "Ctrl-C forwarding",
    "survivor": "clean-up of processes left behind",
}


def _reason_words(reason: object) -> str:
    return _REASONS.get(str(reason), f"{reason} escalation" if reason else "escalation")


def _forensics_reason(data: BundleData, rec: SignalRecord) -> str:
    best = None
    for ev in data.events:
        t = ev.get("t")
        same = ev.get("kind") == "signal-sent" and ev.get("signal") == rec.signal
        if same and isinstance(t, (int, float)) and abs(t - rec.t) < 5.0:
            best = ev
    if best is None:
        return "escalation"
    if best.get("pgid") is not None and best.get("reason") is None:
        return _reason_words("interrupt")
    return _reason_words(best.get("reason"))


def _in_group(data: BundleData, victim: ProcessRecord) -> bool:
    # The supervisor's killpg reaches the whole command group; workers are in it.
    return victim.role is not None or victim.ppid is not None


def _test_at(rec: ProcessRecord, t: float) -> str | None:
    for test in reversed(rec.tests):
        if test.start <= t + 0.01 and (test.end is None or test.end >= t - 0.01):
            return test.nodeid
    return None


def _ancestors(data: BundleData, rec: ProcessRecord) -> list[int]:
    out, seen = [], set()
    ppid = rec.ppid
    while ppid is not None and ppid not in seen:
        seen.add(ppid)
        out.append(ppid)
        parent = data.processes.get(ppid)
        ppid = parent.ppid if parent is not None else None
    return out


def _related(
    data: BundleData, sender: ProcessRecord, victim: ProcessRecord, sender_test: str | None
) -> bool:
    """The sender and the victim are of one test's process tree: one descends from the other,
    or both from the same pytest process that runs the tests (not the xdist controller)."""
    above_sender, above_victim = _ancestors(data, sender), _ancestors(data, victim)
    if victim.pid in above_sender or sender.pid in above_victim:
        return True
    for pid in set(above_sender) & set(above_victim):
        common = data.processes.get(pid)
        if common is not None and common.role in ("worker", "single"):
            return True
    return False


def apply_sender(incident: Incident, facts: SenderFacts) -> None:
    """The sender on the incident: an evidence line and ``extra["signal_sender"]``."""
    incident.extra["signal_sender"] = facts.to_dict()
    detail = facts.description
    if facts.own_test_tree:
        detail += "; the sender is in the dying process's own test tree (the test's doing)"
    if facts.result and facts.result != "delivered":
        detail += f"; the kernel reported {facts.result}"
    incident.evidence.insert(0, Evidence(source=facts.source, excerpt=detail))


@dataclass
class HandledSignal:
    signal: str
    pid: int
    time: float
    handler: str
    went_on: bool
    worker: str | None = None
    test: str | None = None

    def sentence(self) -> str:
        who = f"pid {self.pid}" + (f" ({self.worker})" if self.worker else "")
        during = f" while running {self.test}" if self.test else ""
        after = "the process went on" if self.went_on else "the process then ended"
        return f"{self.signal} delivered to {who}{during}, handled by {self.handler}, {after}"


def handled_signals(
    data: BundleData, log: SignalLog, names: tuple[str, ...] = ("SIGINT",)
) -> list[HandledSignal]:
    """Interrupts a handler took: the process did not die of them (seed 002's question)."""
    found = []
    for rec in log.records:
        if rec.event != "deliver" or rec.signal not in names or rec.disposition != "handler":
            continue
        proc = data.processes.get(rec.pid)
        ended = proc.end if proc is not None else None
        died_of_it = proc is not None and proc.signal == rec.signal
        later = proc is not None and any(
            t.start > rec.t or (t.end is not None and t.end > rec.t) for t in proc.tests
        )
        went_on = not died_of_it and (later or ended is None or ended - rec.t > 1.0)
        found.append(
            HandledSignal(
                signal=rec.signal,
                pid=rec.pid,
                time=rec.t,
                handler=_handler_words(rec),
                went_on=went_on,
                worker=proc.worker if proc is not None else None,
                test=_test_at(proc, rec.t) if proc is not None else None,
            )
        )
    return found


def _handler_words(rec: SignalRecord) -> str:
    obj = rec.handler_object or ""
    name = obj.rsplit("/", 1)[-1]
    if "libpython" in name or name.startswith("python"):
        # CPython's C handler only flags the signal; the Python function then runs in the
        # main thread between bytecodes.
        return f"the Python signal handler (CPython's C handler at {rec.handler} in {name})"
    if name:
        return f"a native handler at {rec.handler} in {name}"
    return f"a handler at {rec.handler}"


def timeline_marks(data: BundleData, log: SignalLog) -> list[SignalMark]:
    """The kills and interrupts among the captured signals, with who sent them."""
    marks = []
    for rec in log.records:
        if rec.event != "generate" or rec.signal not in KILLS:
            continue
        if rec.code.startswith(("SEGV_", "BUS_")) or (
            rec.sender_pid == rec.pid and rec.signal in ("SIGSEGV", "SIGBUS", "SIGABRT")
        ):
            continue  # the process's own crash (or its re-raise): drawn as the incident's mark
        sender = data.processes.get(rec.sender_pid) if rec.sender_pid is not None else None
        who = (
            f"pid {rec.sender_pid} ({rec.sender_comm or '?'})"
            if sender is None
            else f"pid {rec.sender_pid} ({sender.worker or rec.sender_comm or '?'})"
        )
        marks.append(
            SignalMark(
                t=rec.t,
                signal=rec.signal,
                receiver_pid=rec.pid,
                sender_pid=rec.sender_pid,
                label=f"{rec.signal} from {who} to pid {rec.pid} ({rec.result or '?'})",
                result=rec.result,
            )
        )
        if len(marks) >= MAX_MARKS:
            break
    return marks
