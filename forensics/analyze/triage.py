"""Bundle -> incidents: correlate each process death with its test, then attribute a cause.

One incident per dead process.  A consequence (xdist's INTERNALERROR after a crash, a test that
failed because a process it started crashed) is attached to the incident it follows from, as a
secondary cause, never as a primary one.

The builder is made of steps, one module a job: the shared state (``triage_state``), the
verdicts on deaths of processes a test started (``owned_deaths``), memory facts
(``memory_facts``), incidents from the run's reports (``reported``), the run section
(``run_facts``) and the differential (``death_differential``).  This module turns each death
into an incident and puts the steps in order.
"""

from __future__ import annotations

from pathlib import Path

from forensics.analyze.attribution import attribute, recorded_owners
from forensics.analyze.bundle_source import ProcessRecord, TestRun, load_bundle
from forensics.analyze.console import enrich_from_console
from forensics.analyze.death_differential import DeathDifferential
from forensics.analyze.hangs import find_hangs, timeout_kill
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.memory_facts import MemoryFacts
from forensics.analyze.native import apply_native, native_death
from forensics.analyze.owned_deaths import OwnedDeaths
from forensics.analyze.ownership import Owner
from forensics.analyze.reported import Reported
from forensics.analyze.run_facts import RunFacts
from forensics.analyze.signals import (
    apply_sender,
    handled_signals,
    signal_sender,
    timeline_marks,
)
from forensics.analyze.triage_state import (
    KILL_SIGNALS,
    NATIVE_SIGNALS,
    _exit_status,
    _repro,
    _shell_command,
    _short_argv,
    _test_at_death,
)
from forensics.bundle import OUTPUT
from forensics.faultparse import FaultBlock, parse_fault_text
from forensics.model import (
    Evidence,
    Incident,
    Source,
    Triage,
)


def analyze_bundle(path: Path) -> Triage:
    data = load_bundle(path)
    builder = _Builder(data)
    return builder.build()


class _Builder(RunFacts, Reported, OwnedDeaths, MemoryFacts, DeathDifferential):
    """One bundle's triage."""

    # --- processes -> incidents --------------------------------------------------------------

    def build(self) -> Triage:
        data = self.data
        controller = self._controller()
        hangs = find_hangs(data, self._prior_and_repro, self.ownership)
        self.incidents.extend(hangs.incidents)
        for rec in sorted(data.processes.values(), key=lambda r: (r.end or r.start or 0, r.pid)):
            if rec.pid in hangs.explained:
                continue
            incident = self._death(rec)
            if incident is not None:
                self.incidents.append(incident)
        self._crash_items_without_incident()
        self._collect_errors()
        self._failed_tests()
        self._attach_consequences()
        self._internal_errors()
        self._console()
        for built in self.incidents:
            self._differential(built)
        # Numbered in the order things happened; what has no time (a run-wide error) last.
        self.incidents.sort(key=lambda i: (i.time is None, i.time or 0.0))
        self._mark_repeats()
        owners = {}
        recorded = recorded_owners(data.system)
        for number, incident in enumerate(self.incidents, 1):
            incident.id = f"I{number}"
            if incident.signature is None:
                # Keyed as `forensics analyze` keys them, so logs and bundles group together.
                incident.signature = normalize(f"{incident.cause} {incident.test or 'unknown'}")
            owner = attribute(incident, recorded)
            if owner is not None:
                name, _, version = owner.removeprefix("system ").rpartition(" ")
                owners[name or owner] = version
        if recorded is None and any("owner_recorded" in i.extra for i in self.incidents):
            self.notes.append(
                "this bundle was written before wrap recorded who installed each library: "
                "libraries are named without their distribution"
            )
        for sec_holder in self.incidents:
            if sec_holder.repeat_of is not None:
                sec_holder.summary += f" (again: the same test as {sec_holder.repeat_of})"
        self.notes.extend(h.sentence() for h in handled_signals(data, self.signals))
        survivors = [r for r in data.processes.values() if r.survivor]
        if survivors:
            self.notes.append(
                f"{len(survivors)} process(es) outlived the command and were ended by forensics: "
                + ", ".join(f"{r.pid} ({' '.join(r.argv)[:80]})" for r in survivors[:10])
            )
        if self.expected:
            self.notes.append(
                f"{len(self.expected)} process death(s) caused by the tests themselves are not "
                "incidents (listed under expected deaths)"
            )
        not_covered = self._not_covered()
        if not_covered:
            self.notes.append(
                f"{len(not_covered)} Python process(es) ran without the agent (no breadcrumbs, "
                "no fault file): listed under not covered"
            )
        return Triage(
            source=Source(kind="bundle", paths=[str(data.path)]),
            run=self._run(controller),
            incidents=self.incidents,
            timelines=self._timelines(),
            notes=self.notes,
            environment=self._environment(owners),
            expected_deaths=sorted(self.expected, key=lambda d: (d.time or 0.0, d.pid)),
            not_covered=not_covered,
            signals=timeline_marks(data, self.signals),
        )

    def _death(self, rec: ProcessRecord) -> Incident | None:
        fatal = next((b for b in rec.faults if b.fatal), None)
        if fatal is None and rec.signal in NATIVE_SIGNALS and rec.role is None:
            # A process without a fault file printed its fatal error where its stderr went:
            # into what pytest captured for its test, or to the terminal.
            claimed = self._captured_fault(rec) or self.output_faults.claim(
                rec.pid, rec.signal, rec.end
            )
            if claimed is not None:
                fatal, rec.fault_path = claimed
        signal = rec.signal or (fatal.signal if fatal else None)
        if rec.survivor and not fatal:
            return None
        owner = self.ownership.owner(rec.pid)
        if owner is not None and not self._owned_death_is_incident(rec, owner, signal, fatal):
            return None
        if self._ended_by_xdist_shutdown(rec, signal, fatal is not None):
            if rec.session_finished and rec.shutdown_at is not None and rec.end is not None:
                self.notes.append(
                    f"worker {rec.worker} finished its tests but did not exit; pytest-xdist ended "
                    f"it with {signal} {rec.end - rec.shutdown_at:.1f} s later (a non-daemon "
                    "thread or a child process kept it alive)"
                )
            else:
                self.notes.append(
                    f"worker {rec.worker} was idle and ended by {signal} while pytest-xdist shut "
                    "down"
                )
            return None
        open_test = rec.open_test
        if not self.complete and signal is None and fatal is None and rec.exit_code is None:
            # The supervisor was killed; the watchdog ended this process, unobserved.
            if open_test is not None:
                self.notes.append(
                    f"{rec.worker or f'pid {rec.pid}'} was running {open_test.nodeid} when the "
                    "supervisor was killed"
                )
            return None
        open_test = rec.open_test if owner is None else None
        in_pytest = rec.role is not None and owner is None
        if signal is None and fatal is None:
            if not in_pytest or rec.session_finished:
                return None
            if rec.exit_code is None and rec.clean_exit:
                return None
            # A pytest process that ended between tests: xdist shut it down, or it exited.
            between_tests = open_test is None and rec.open_collect is None
            if between_tests and (rec.exit_code in (None, 0) or rec.role == "controller"):
                return None
        cause, confidence = self._cause(rec, signal, fatal is not None)
        timer = timeout_kill(rec) if fatal is None else None
        if timer is not None:
            cause, confidence = "hang", "high"
        incident = Incident(
            id="",
            cause=cause,
            confidence=confidence,
            summary="",
            worker=rec.worker or (owner.process.worker if owner else rec.parent_worker),
            pid=rec.pid,
            signal=signal,
            exit_code=_exit_status(rec),
            time=rec.end,
        )
        self._attach_test(incident, rec, open_test, owner)
        if timer is not None:
            incident.extra["hang"] = {"killed_by": "pytest-timeout", **timer[1]}
            incident.evidence.insert(
                0,
                Evidence(
                    source=f"workers/{rec.pid}.jsonl",
                    excerpt=f"pytest-timeout ({timer[1]['method']} method) armed "
                    f"{timer[1]['timeout_s']}s for {timer[0].nodeid}; the process then ended "
                    "itself with os._exit(1)",
                ),
            )
            dump = next((b for b in reversed(rec.faults) if b.header), None)
            if dump is not None:
                incident.stacks = list(dump.threads)
                incident.evidence.append(
                    Evidence(source=f"{rec.fault_path}:{dump.first_line}", excerpt=dump.text[:4000])
                )
        if fatal is not None:
            incident.stacks = list(fatal.threads)
            current = fatal.current
            if current is not None and current in incident.stacks:
                incident.stacks.remove(current)
                incident.stacks.insert(0, current)
            incident.evidence.append(
                Evidence(
                    source=f"{rec.fault_path}:{fatal.first_line}"
                    if rec.fault_path and "(" not in rec.fault_path
                    else str(rec.fault_path),
                    excerpt=fatal.text[:4000],
                )
            )
        if rec.signal and rec.exit_source:
            incident.evidence.append(
                Evidence(
                    source=f"events.jsonl ({rec.exit_source})",
                    excerpt=f"pid {rec.pid} ({' '.join(rec.argv)[:200]}) killed by {rec.signal}",
                )
            )
        elif rec.exit_code is not None:
            incident.evidence.append(
                Evidence(
                    source=f"events.jsonl ({rec.exit_source})",
                    excerpt=f"pid {rec.pid} exited with status {rec.exit_code} mid-run",
                )
            )
        if signal in NATIVE_SIGNALS or fatal is not None:
            death = native_death(self.data, rec.pid, fatal.text if fatal else None)
            if death is not None:
                apply_native(incident, death)
        sender = signal_sender(self.data, rec.pid, rec.signal, self.signals)
        if sender is not None and (signal not in NATIVE_SIGNALS or sender.kind == "run"):
            apply_sender(incident, sender)  # a crash signal sent by another process too
        if rec.pid in self.oom_pids:
            incident.evidence.append(
                Evidence(source="system/kernel.log", excerpt=self.oom_pids[rec.pid])
            )
        if incident.cause == "oom-kill" and rec.pid not in self.oom_pids:
            incident.evidence.extend(
                Evidence(source="system/cgroup.json", excerpt=line) for line in self.cgroup_oom
            )
        if incident.cause == "oom-kill":
            incident.memory = self._memory_facts(rec)
            limit = incident.memory.get("limit_bytes")
            if limit:
                incident.evidence.append(
                    Evidence(source="system/cgroup.json", excerpt=f"memory limit {limit} bytes")
                )
        incident.summary = self._summary(incident, rec)
        return incident

    def _captured_fault(self, rec: ProcessRecord) -> tuple[FaultBlock, str] | None:
        """The fatal block in the captured stderr of the test running when *rec* died."""
        owner = self.ownership.owner(rec.pid)
        test = _test_at_death(owner, rec) if owner is not None else None
        if owner is None or test is None:
            return None
        for index, text in enumerate(test.captured_faults):
            key = (owner.process.pid, test.nodeid, index)
            if key in self.claimed_captures:
                continue
            block = next((b for b in parse_fault_text(text, rec.pid) if b.fatal), None)
            if block is None or block.signal not in (None, rec.signal):
                continue
            self.claimed_captures.add(key)
            return block, f"workers/{owner.process.pid}.jsonl (captured stderr of {test.nodeid})"
        return None

    def _ended_by_xdist_shutdown(self, rec: ProcessRecord, signal: str | None, fatal: bool) -> bool:
        """An idle worker that xdist itself killed (execnet's popen.kill) while shutting down."""
        if rec.role != "worker" or fatal or signal not in KILL_SIGNALS:
            return False
        if rec.open_test is not None or rec.open_collect is not None or rec.pid in self.oom_pids:
            return False
        if rec.session_finished:
            return True  # its session was over: only xdist's teardown ends it then
        controller = self._controller()
        shutdown = controller.shutdown_at if controller is not None else None
        return shutdown is not None and rec.end is not None and rec.end >= shutdown

    def _cause(self, rec: ProcessRecord, signal: str | None, fatal: bool) -> tuple[str, str]:
        if fatal or signal in NATIVE_SIGNALS:
            return "native-crash", "high" if fatal and signal else "medium"
        if signal == "SIGKILL" and rec.pid in self.oom_pids:
            return "oom-kill", "high"
        if signal == "SIGKILL" and self.cgroup_oom and rec.pid not in self.killed_by_us:
            # No kernel log line names it (dmesg restricted), but a cgroup counted OOM kills.
            return "oom-kill", "medium"
        if signal in KILL_SIGNALS:
            return "external-kill", "medium" if signal == "SIGKILL" else "high"
        if signal is not None:
            return "external-kill", "low"
        if rec.exit_code is not None or rec.open_test is not None:
            return "unexpected-exit", "medium" if rec.exit_code is not None else "low"
        return "unknown", "low"

    def _attach_test(
        self, incident: Incident, rec: ProcessRecord, test: TestRun | None, owner: Owner | None
    ) -> None:
        if owner is not None:
            # A process a test started: blame the test running when it died, and say it was
            # the child that died.
            at_death = _test_at_death(owner, rec) or owner.test
            incident.test = at_death.nodeid
            incident.extra["in_child_process"] = True
            if at_death is not owner.test:
                incident.extra["started_by_test"] = owner.test.nodeid
            # Only what ran before that test: later tests are not suspects, and re-running
            # them could crash for reasons of their own.
            incident.prior_tests, incident.repro = self._prior_and_repro(
                owner.process, at_death.nodeid
            )
            incident.phase = at_death.phase_at(rec.end)
        elif test is not None:
            incident.test = test.nodeid
            incident.phase = test.open_phase
            incident.prior_tests = [t.nodeid for t in rec.tests[:-1]]
            incident.repro = _repro(rec, [*incident.prior_tests, test.nodeid])
        elif rec.open_collect is not None:
            incident.test = rec.open_collect
            incident.phase = "collect"
            incident.prior_tests = [t.nodeid for t in rec.tests]
            incident.repro = _repro(rec, [rec.open_collect])
        elif rec.role is None and rec.argv:
            # argv[0] may be "python" from PATH; the agent knows which interpreter it was.
            argv = [rec.executable, *rec.argv[1:]] if rec.executable else rec.argv
            incident.repro = _shell_command(rec.cwd, argv)
        crash_test = self._crash_item_for(rec)
        if crash_test and incident.test is None:
            incident.test = crash_test
            incident.confidence = "medium"

    def _crash_item_for(self, rec: ProcessRecord) -> str | None:
        if rec.worker is None:
            return None
        for raw in self.controller_records:
            if raw.get("kind") == "crash-item" and raw.get("worker") == rec.worker:
                nodeid = raw.get("nodeid")
                if isinstance(nodeid, str):
                    return nodeid
        return None

    def _summary(self, incident: Incident, rec: ProcessRecord) -> str:
        who = f"worker {incident.worker}" if rec.role == "worker" else None
        if who is None:
            if incident.extra.get("in_child_process"):
                who = f"process {rec.pid} ({_short_argv(rec.argv)}) started by a test"
            elif rec.role in ("controller", "single"):
                who = "the pytest process"
            else:
                who = f"process {rec.pid} ({_short_argv(rec.argv)})"
        how = {
            "native-crash": f"died of {incident.signal or 'a fatal error'} in native code"
            + (f" in {where}" if (where := incident.extra.get("native", {}).get("where")) else ""),
            "oom-kill": "was killed by the kernel OOM killer",
            "external-kill": "was killed by "
            + incident.extra.get("signal_sender", {}).get(
                "description", f"{incident.signal} from outside"
            ),
            "unexpected-exit": (
                f"exited with status {incident.exit_code} mid-test"
                if incident.exit_code is not None
                else "ended mid-test with no exit status recorded"
            ),
            "hang": "was ended by pytest-timeout's timer (os._exit(1)) after the test hung",
            "unknown": "ended without a trace",
        }.get(incident.cause, incident.cause)
        where = ""
        if incident.test:
            phase = f" ({incident.phase})" if incident.phase else ""
            where = f" while running {incident.test}{phase}"
        return f"{who} {how}{where}"

    def _console(self) -> None:
        """What only the console shows, on the incidents of the deaths it belongs to."""
        console = enrich_from_console(self.incidents, self.data.output_path)
        self.console_tail = console.tail  # the run section's early-exit errors come from it
        self.notes.extend(console.notes)
        if console.unmatched:
            self.notes.append(
                f"{OUTPUT}: {len(console.unmatched)} death(s) printed on the console match no "
                "process death of the run (an expected crash, or a process outside it): "
                + "; ".join(f"line {e.line}: {e.what[:160]}" for e in console.unmatched[:3])
            )
