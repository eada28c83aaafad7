"""Bundle -> incidents: correlate each process death with its test, then attribute a cause.

One incident per dead process.  A consequence (xdist's INTERNALERROR after a crash, a test that
failed because a process it started crashed) is attached to the incident it follows from, as a
secondary cause, never as a primary one.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from forensics.analyze import differential
from forensics.analyze.attribution import attribute
from forensics.analyze.bundle_source import BundleData, ProcessRecord, TestRun, load_bundle
from forensics.analyze.faultparse import FaultBlock, parse_fault_text
from forensics.analyze.hangs import find_hangs, timeout_kill
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.native import apply_native, native_death
from forensics.analyze.output_faults import OutputFaults
from forensics.analyze.ownership import Owner, Ownership, test_at
from forensics.analyze.rules import INFRASTRUCTURE
from forensics.analyze.signals import (
    SignalLog,
    apply_sender,
    handled_signals,
    signal_sender,
    timeline_marks,
)
from forensics.model import (
    Evidence,
    ExpectedDeath,
    Incident,
    NotCovered,
    ProcessTimeline,
    Run,
    Secondary,
    Source,
    TestCounts,
    TimelineTest,
    Triage,
)

NATIVE_SIGNALS = {"SIGSEGV", "SIGABRT", "SIGBUS", "SIGFPE", "SIGILL", "SIGSYS", "SIGTRAP"}
KILL_SIGNALS = {"SIGKILL", "SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGPIPE", "SIGALRM"}
XDIST_714 = "pytest-dev/pytest-xdist#714"
_INFRA_RE = INFRASTRUCTURE  # one rule set with the log side: forensics/analyze/rules.py


def analyze_bundle(path: Path) -> Triage:
    data = load_bundle(path)
    builder = _Builder(data)
    return builder.build()


class _Builder:
    def __init__(self, data: BundleData) -> None:
        self.data = data
        self.incidents: list[Incident] = []
        self.notes = list(data.notes)
        self.oom_kills = _oom_kills(data)
        self.oom_pids = {
            pid: str(kill.get("line") or "OOM kill")[:1000] for pid, kill in self.oom_kills.items()
        }
        self.sampled = _sampled_memory(data)
        self.cgroup_oom = _cgroup_oom_kills(data)
        self.killed_by_us = _killed_by_us(data)
        self.complete = isinstance(data.manifest.get("end"), (int, float))
        self.ownership = Ownership(data)
        self.output_faults = OutputFaults(data.path)
        self.claimed_captures: set[tuple[int, str, int]] = set()
        # Records of the run's own pytest session; a session a test ran (pytester) is the test's.
        self.controller_records = [
            r
            for r in data.controller_records
            if not isinstance(r.get("pid"), int) or self.ownership.top_level(r["pid"])
        ]
        self.expected: list[ExpectedDeath] = []
        # Kills of a failed test's processes: attached to that test's failure once it exists.
        self.consequences: list[tuple[Owner, ProcessRecord, str]] = []
        self.signals = SignalLog.load(data.path)

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
        for built in self.incidents:
            self._differential(built)
        # Numbered in the order things happened; what has no time (a run-wide error) last.
        self.incidents.sort(key=lambda i: (i.time is None, i.time or 0.0))
        self._mark_repeats()
        owners = {}
        for number, incident in enumerate(self.incidents, 1):
            incident.id = f"I{number}"
            if incident.signature is None:
                # Keyed as `forensics analyze` keys them, so logs and bundles group together.
                incident.signature = normalize(f"{incident.cause} {incident.test or 'unknown'}")
            owner = attribute(incident)
            if owner is not None:
                name, _, version = owner.removeprefix("system ").rpartition(" ")
                owners[name or owner] = version
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

    def _environment(self, owners: dict[str, str]) -> dict[str, object]:
        """Facts for an upstream bug report: interpreter, OS, and the packages that matter."""
        manifest = self.data.manifest
        host = _dict(manifest.get("host"))
        tools = _dict(manifest.get("tools"))
        packages = {k: v for k, v in tools.items() if isinstance(k, str) and isinstance(v, str)}
        packages.update(owners)
        env: dict[str, object] = {"packages": packages}
        for key, source in (
            ("python", "python"),
            ("os", "platform"),
            ("cpu_count", "cpus"),
            ("ci", "ci"),
        ):
            if host.get(source) is not None:
                env[key] = host[source]
        return env

    def _prior_and_repro(self, rec: ProcessRecord, nodeid: str) -> tuple[list[str], str | None]:
        names = [t.nodeid for t in rec.tests]
        prior = names[: names.index(nodeid)] if nodeid in names else names
        return prior, _repro(rec, [*prior, nodeid])

    def _controller(self) -> ProcessRecord | None:
        for rec in self.data.processes.values():
            if rec.role in ("controller", "single") and self.ownership.top_level(rec.pid):
                return rec
        return None

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

    def _memory_facts(self, rec: ProcessRecord) -> dict[str, object]:
        """The limit that was hit, the process's peak, and the tests that grew it the most."""
        kill = self.oom_kills.get(rec.pid, {})
        limit = kill.get("memcg_limit_bytes")
        cgroup = self.data.system.get("cgroup")
        if not isinstance(limit, int) and isinstance(cgroup, dict):
            run = cgroup.get("run")
            surrounding = cgroup.get("surrounding")
            chain = surrounding.get("end") if isinstance(surrounding, dict) else None
            for mem in [run, *(chain if isinstance(chain, list) else [])]:
                if isinstance(mem, dict) and isinstance(mem.get("limit_bytes"), int):
                    limit = mem["limit_bytes"]
                    break
        at_kill = sum(
            v
            for v in (kill.get("anon_rss_bytes"), kill.get("file_rss_bytes"))
            if isinstance(v, int)
        )
        sampled = self.sampled.get(rec.pid, {})
        peak = max(at_kill, sampled.get("peak_rss") or 0) or None
        growth = []
        for test in rec.tests:
            end_rss = test.rss_end
            if end_rss is None and test is rec.open_test:
                end_rss = at_kill or sampled.get("last_rss")
            if test.rss_start is not None and isinstance(end_rss, int):
                growth.append({"test": test.nodeid, "rss_delta_bytes": end_rss - test.rss_start})
        growth.sort(key=lambda g: -int(g["rss_delta_bytes"]))  # type: ignore[call-overload]
        return {
            "limit_bytes": limit if isinstance(limit, int) else None,
            "peak_rss_bytes": peak,
            "top_growth": [g for g in growth if int(g["rss_delta_bytes"]) >= _GROWTH_NOISE][:10],  # type: ignore[call-overload]
            "constraint": kill.get("constraint"),
        }

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

    def _owned_death_is_incident(
        self, rec: ProcessRecord, owner: Owner, signal: str | None, fatal: object
    ) -> bool:
        """Whether the death of a process a test started is an incident of the run.

        A test that starts processes decides what their deaths mean: when it passed, they are
        its business (a pool's terminate(), a crash it provoked and checked); when it failed,
        a kill is its cleanup, a consequence of the failure; a crash or an OOM kill before the
        test ended is the incident, the test's failure its consequence.
        """
        oom = rec.pid in self.oom_pids
        crashed = fatal is not None or signal in NATIVE_SIGNALS
        if signal is None and not fatal:
            return False  # an exit status is for the test to judge
        sender = signal_sender(self.data, rec.pid, signal, self.signals) if signal else None
        if sender is not None and sender.kind in ("run", "outside") and not sender.own_test_tree:
            return True  # the kernel says someone outside the test's processes sent it
        # The test running when it died is in charge (a pool's worker outlives the test that
        # started it, and a later test may crash it on purpose).
        test = _test_at_death(owner, rec)
        if test is None:
            if crashed or oom:
                return True
            self._expect(rec, owner, signal, "ended between tests (a fixture's or pool's cleanup)")
            return False
        later = f" (started by {owner.test.nodeid})" if test is not owner.test else ""
        if test.end is not None and not test.failed:
            self._expect(rec, owner, signal, f"{test.nodeid} passed{later}", test)
            return False
        if (test.failed or test.end is None) and signal in KILL_SIGNALS and not oom:
            # Killed by its own test tree while the test failed, hung or crashed its worker:
            # a consequence of that incident, not a second one.
            self.consequences.append((Owner(owner.process, test), rec, signal or "?"))
            return False
        return True

    def _expect(
        self,
        rec: ProcessRecord,
        owner: Owner,
        signal: str | None,
        why: str,
        test: TestRun | None = None,
    ) -> None:
        self.expected.append(
            ExpectedDeath(
                pid=rec.pid,
                argv=_short_argv(rec.argv),
                reason=why,
                test=(test or owner.test).nodeid,
                signal=signal,
                exit_code=_exit_status(rec),
                time=rec.end,
            )
        )

    def _cleanup_sender(self, rec: ProcessRecord, signal: str, failed: bool) -> str:
        when = "after the failure" if failed else "while the test ran (it never finished)"
        sender = signal_sender(self.data, rec.pid, signal, self.signals)
        if sender is not None and sender.source == "signals.jsonl":
            return f"{sender.description}, within the test's own processes, {when}"
        return f"{when}, most likely by the test's own processes (no sender recorded)"

    def _attach_consequences(self) -> None:
        """Processes of a failed or unfinished test, killed meanwhile: secondary to its incident."""
        for owner, rec, signal in self.consequences:
            failure = next(
                (
                    i
                    for i in self.incidents
                    if i.test == owner.test.nodeid and i.pid == owner.process.pid
                ),
                None,
            )
            if failure is None:
                outcome = "failed" if owner.test.failed else "did not finish"
                self._expect(rec, owner, signal, f"ended while {owner.test.nodeid} {outcome}")
                continue
            when = ""
            if rec.end is not None and (at := owner.test.phase_at(rec.end)):
                when = f" during {at}"
            failure.secondary.append(
                Secondary(
                    cause="external-kill",
                    summary=f"pid {rec.pid} ({_short_argv(rec.argv)}), started by the test, "
                    f"was killed by {signal}{when}: "
                    + self._cleanup_sender(rec, signal, owner.test.failed),
                )
            )

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

    def _differential(self, incident: Incident) -> None:
        """What else the incident could be, weighed from what the bundle recorded."""
        if incident.cause not in differential.DEATH_CAUSES:
            differential.reported_failure(incident)
            return
        rec = self.data.processes.get(incident.pid) if incident.pid is not None else None
        hang = _dict(incident.extra.get("hang"))
        facts = differential.DeathFacts(source="bundle", signal=incident.signal)
        if incident.cause == "hang" and hang.get("killed_by") != "pytest-timeout":
            facts.stalled = incident.summary.split(";")[0]
            facts.ended_by = "forensics"
        if rec is None:
            differential.apply(incident, facts)
            return
        facts.worker = rec.role == "worker"
        facts.status_observed = rec.exit_source is not None
        facts.exit_code = rec.exit_code
        facts.fault_dump = any(b.fatal for b in rec.faults) or (
            incident.cause == "native-crash" and bool(incident.stacks)
        )
        facts.oom = self.oom_pids.get(rec.pid) or (
            self.cgroup_oom[0] if incident.cause == "oom-kill" and self.cgroup_oom else None
        )
        cgroup = _dict(self.data.system.get("cgroup"))
        facts.oom_readable = isinstance(self.data.system.get("oom"), dict) or isinstance(
            _dict(cgroup.get("run")).get("oom_kill"), int
        )
        test = next((t for t in reversed(rec.tests) if t.nodeid == incident.test), None)
        if test is not None:
            facts.timeout_s, facts.timeout_method = test.timeout, test.timeout_method
            if rec.end is not None:
                facts.ran_s = round(rec.end - test.start, 3)
        if hang.get("killed_by") == "pytest-timeout":
            facts.timer_dump = any(b.header for b in rec.faults if not b.fatal)
        if incident.signal in KILL_SIGNALS:
            sender = signal_sender(self.data, rec.pid, incident.signal, self.signals)
            facts.sender = sender.description if sender is not None else None
        differential.apply(incident, facts)

    # --- reports that no dead process explains -----------------------------------------------

    def _crash_items_without_incident(self) -> None:
        blamed = {(i.worker, i.test) for i in self.incidents}
        for raw in self.controller_records:
            if raw.get("kind") != "crash-item":
                continue
            worker, nodeid = raw.get("worker"), raw.get("nodeid")
            if not isinstance(nodeid, str) or (worker, nodeid) in blamed:
                continue
            blamed.add((worker, nodeid))
            down = next(
                (
                    r
                    for r in self.controller_records
                    if r.get("kind") == "node-down" and r.get("worker") == worker
                ),
                {},
            )
            self.incidents.append(
                Incident(
                    id="",
                    cause="unknown",
                    confidence="low",
                    summary=f"worker {worker} went down while running {nodeid}; "
                    "no exit status or fault dump was captured",
                    worker=worker if isinstance(worker, str) else None,
                    pid=down.get("worker_pid") if isinstance(down.get("worker_pid"), int) else None,
                    test=nodeid,
                    evidence=[Evidence(source="xdist", excerpt=str(down.get("error") or ""))],
                )
            )

    def _collect_errors(self) -> None:
        """A module that failed to import or collect: every worker reports it; one incident."""
        seen: set[str] = set()
        for rec in self.data.processes.values():
            if rec.role is None or not self.ownership.top_level(rec.pid):
                continue
            for nodeid, text, when in rec.collect_errors:
                if nodeid in seen:
                    continue
                seen.add(nodeid)
                head = _error_line(text) or "collection failed"
                cause = _failure_cause(text)
                self.incidents.append(
                    Incident(
                        id="",
                        cause=cause,
                        confidence="high",
                        summary=f"{nodeid or 'the test session'} could not be collected: {head}",
                        worker=rec.worker,
                        pid=rec.pid,
                        test=nodeid or None,
                        phase="collect",
                        signature=normalize(head),
                        time=when,
                        evidence=[
                            Evidence(source=f"workers/{rec.pid}.jsonl", excerpt=text[-4000:])
                        ],
                    )
                )

    def _not_covered(self) -> list[NotCovered]:
        """Python processes of the run that never wrote a start record, and the likely reason."""
        found = []
        for rec in sorted(self.data.processes.values(), key=lambda r: r.pid):
            if rec.has_agent or not _is_python(rec.argv):
                continue
            if rec.start is not None and rec.end is not None and rec.end - rec.start < _NO_PYTHON_S:
                # Gone before an interpreter could even start: a fork of a Python process that
                # failed or exec'd nothing (a launcher's), not a Python process at all.
                continue
            found.append(NotCovered(rec.pid, _short_argv(rec.argv), _why_not_covered(rec)))
        return found

    def _failed_tests(self) -> None:
        crashed = {(i.test, i.worker) for i in self.incidents if i.test}
        crashed_tests = {i.test for i in self.incidents if i.test}
        for rec in self.data.processes.values():
            if rec.role not in ("worker", "single") or not self.ownership.top_level(rec.pid):
                continue
            for test in rec.tests:
                failed = [p for p, o in test.phases.items() if o == "failed"]
                if not failed:
                    continue
                message = test.messages[-1] if test.messages else "failed"
                if test.nodeid in crashed_tests:
                    # The test failed because a process it started crashed: a consequence.
                    for incident in self.incidents:
                        if incident.test == test.nodeid and incident.extra.get("in_child_process"):
                            incident.secondary.append(
                                Secondary(cause="python-exception", summary=message[:300])
                            )
                    continue
                if (test.nodeid, rec.worker) in crashed:
                    continue
                cause = _failure_cause(message)
                phase = failed[0]
                incident = Incident(
                    id="",
                    cause=cause,
                    confidence="medium" if cause == "infrastructure" else "high",
                    summary=f"{test.nodeid} failed in {phase}: {message.splitlines()[0][:200]}",
                    worker=rec.worker,
                    pid=rec.pid,
                    test=test.nodeid,
                    phase=phase,
                    prior_tests=[t.nodeid for t in rec.tests[: rec.tests.index(test)]],
                    signature=normalize(message.splitlines()[0] if message else ""),
                    time=test.end,
                    evidence=[Evidence(source=f"workers/{rec.pid}.jsonl", excerpt=message[:4000])],
                )
                incident.repro = _repro(rec, [*incident.prior_tests, test.nodeid])
                if test.location is not None:
                    incident.extra["location"] = {
                        "file": test.location[0],
                        "line": test.location[1],
                    }
                if "MemoryError" in message:
                    incident.secondary.append(
                        Secondary(
                            cause="oom-kill",
                            summary="Python could not allocate memory (MemoryError): the process "
                            "hit a memory limit without being killed",
                        )
                    )
                self.incidents.append(incident)

    def _internal_errors(self) -> None:
        for raw in self.controller_records:
            if raw.get("kind") != "internalerror":
                continue
            text = raw.get("text") if isinstance(raw.get("text"), str) else ""
            assert isinstance(text, str)
            is_714 = "KeyError" in text and "WorkerController" in text
            last = next((ln for ln in reversed(text.splitlines()) if ln.strip()), "INTERNALERROR")
            head = last.replace("INTERNALERROR>", "").strip()
            summary = f"xdist INTERNALERROR: {head[:200]}"
            ref = XDIST_714 if is_714 else None
            crashes = [
                i
                for i in self.incidents
                if i.cause in ("native-crash", "oom-kill", "external-kill", "unexpected-exit")
            ]
            if crashes:
                crashes[0].secondary.append(
                    Secondary(cause="xdist-internal", summary=summary, ref=ref)
                )
                crashes[0].evidence.append(
                    Evidence(source="xdist INTERNALERROR", excerpt=text[-3000:])
                )
            else:
                self.incidents.append(
                    Incident(
                        id="",
                        cause="xdist-internal",
                        confidence="high" if is_714 else "medium",
                        summary=summary,
                        signature=normalize(f"INTERNALERROR {head}"),
                        evidence=[Evidence(source="xdist INTERNALERROR", excerpt=text[-4000:])],
                        extra={"ref": ref} if ref else {},
                    )
                )

    def _mark_repeats(self) -> None:
        first: dict[str, Incident] = {}
        for number, incident in enumerate(self.incidents, 1):
            if incident.test is None or incident.cause in ("python-exception", "infrastructure"):
                continue
            if incident.test in first:
                incident.repeat_of = f"I{self.incidents.index(first[incident.test]) + 1}"
            else:
                first[incident.test] = incident
            del number

    # --- run facts ---------------------------------------------------------------------------

    def _run(self, controller: ProcessRecord | None) -> Run:
        manifest = self.data.manifest
        start = manifest.get("start") if isinstance(manifest.get("start"), (int, float)) else None
        end = manifest.get("end") if isinstance(manifest.get("end"), (int, float)) else None
        complete = end is not None
        if end is None and self.data.events:
            times = [e.get("t") for e in self.data.events if isinstance(e.get("t"), (int, float))]
            end = max(times) if times else None  # type: ignore[type-var]
            self.notes.append(
                "the supervisor did not finish (killed?): the run's end and exit status are unknown"
            )
        command = manifest.get("command")
        exit_status = manifest.get("exit_status")
        return Run(
            command=[c for c in command if isinstance(c, str)]
            if isinstance(command, list)
            else None,
            exit_code=exit_status if isinstance(exit_status, int) else None,
            duration_s=round(end - start, 3) if start is not None and end is not None else None,
            tests=self._counts(),
            start=start,
            end=end,
            cwd=manifest.get("cwd") if isinstance(manifest.get("cwd"), str) else None,
            host=_dict(manifest.get("host")),
            complete=complete,
            early_exit=self._early_exit(exit_status, command),
        )

    def _early_exit(self, exit_status: object, command: object) -> dict[str, Any] | None:
        """The command failed before any test ran: a usage, plugin, config or collection error."""
        if not isinstance(exit_status, int) or exit_status == 0:
            return None
        top = [r for r in self.data.processes.values() if self.ownership.top_level(r.pid)]
        if any(r.tests for r in top if r.role in ("worker", "single")):
            return None
        words = (
            " ".join(c for c in command if isinstance(c, str)) if isinstance(command, list) else ""
        )
        if not any(r.role for r in top) and "pytest" not in words:
            return None  # not a test run: nothing says tests should have run
        errors = [_error_line(text) or nodeid for r in top for nodeid, text, _ in r.collect_errors]
        stage = "collection" if errors or any(r.role for r in top) else "startup"
        if not errors:
            errors = _output_errors(self.data.output_path)
        if stage == "collection" and not errors and exit_status == 5:
            errors = ["no tests were collected"]
        return {"exit_code": exit_status, "stage": stage, "error": "\n".join(dict.fromkeys(errors))}

    def _counts(self) -> TestCounts:
        """Outcomes as pytest counts them: from the controller's reports when there is one."""
        reports = [r for r in self.controller_records if r.get("kind") == "report"]
        outcomes: dict[str, str] = {}
        finished: set[str] = set()
        if reports:
            for raw in reports:
                nodeid, phase, outcome = raw.get("nodeid"), raw.get("phase"), raw.get("outcome")
                if isinstance(nodeid, str) and isinstance(outcome, str):
                    outcomes[nodeid] = _combine(outcomes.get(nodeid), str(phase), outcome)
                    if phase == "teardown":
                        finished.add(nodeid)
        else:
            for rec in self.data.processes.values():
                if rec.role not in ("worker", "single") or not self.ownership.top_level(rec.pid):
                    continue
                for test in rec.tests:
                    for phase, outcome in test.phases.items():
                        outcomes[test.nodeid] = _combine(outcomes.get(test.nodeid), phase, outcome)
                    if "teardown" in test.phases:
                        finished.add(test.nodeid)
        counts = TestCounts()
        for nodeid, outcome in outcomes.items():
            if outcome == "passed" and nodeid not in finished:
                continue  # setup passed, then the run ended before the test did
            setattr(counts, outcome, getattr(counts, outcome) + 1)
        return counts

    def _timelines(self) -> list[ProcessTimeline]:
        timelines = []
        ended = {i.pid: i.cause for i in self.incidents if i.pid is not None}
        for rec in sorted(self.data.processes.values(), key=lambda r: (r.worker or "~", r.pid)):
            if not rec.tests and rec.pid not in ended:
                continue
            tl = ProcessTimeline(
                pid=rec.pid,
                worker=rec.worker,
                argv=rec.argv[:20],
                start=rec.start,
                end=rec.end,
                end_reason=ended.get(rec.pid),
            )
            for test in rec.tests:
                outcome = _outcome(test)
                tl.tests.append(TimelineTest(test.nodeid, test.start, test.end, outcome))
                for t, rss in ((test.start, test.rss_start), (test.end, test.rss_end)):
                    if t is not None and rss is not None:
                        tl.memory.append((t, rss))
            points = self.sampled.get(rec.pid, {}).get("timeline")
            if isinstance(points, list):
                tl.memory.extend(
                    (float(p[0]), int(p[1]))
                    for p in points
                    if isinstance(p, list)
                    and len(p) == 2
                    and all(isinstance(v, (int, float)) for v in p)
                )
            tl.memory.sort()
            timelines.append(tl)
        return timelines


_TIMEOUT_RE = re.compile(r"Failed: Timeout >[\d.]+s|Timeout \(\d+:\d\d:\d\d")


def _failure_cause(message: str) -> str:
    if _TIMEOUT_RE.search(message):
        # pytest-timeout's signal method fails the test instead of killing the process.
        return "hang"
    if _INFRA_RE.search(message):
        return "infrastructure"
    return "python-exception"


# No interpreter starts in less: a "python" that ended sooner never ran Python code.
_NO_PYTHON_S = 0.005
_PYTHON_RE = re.compile(r"(?:^|/)python[\d.]*(?:-dbg|d|m)?$")


def _is_python(argv: list[str]) -> bool:
    return bool(argv) and bool(_PYTHON_RE.search(argv[0]))


def _why_not_covered(rec: ProcessRecord) -> str:
    """What keeps the agent out: it is loaded by site through PYTHONPATH."""
    for arg in rec.argv[1:]:
        if arg in ("-c", "-m") or not arg.startswith("-"):
            break
        flags = arg[1:] if not arg.startswith("--") else ""
        if "I" in flags:
            return "isolated mode (-I) ignores PYTHONPATH and the agent's sitecustomize"
        if "S" in flags:
            return "-S skips the site module, which loads the agent"
        if "E" in flags:
            return "-E ignores PYTHONPATH, which carries the agent"
    if rec.start is not None and rec.end is not None and rec.end - rec.start < 2.0:
        how = f"killed by {rec.signal}" if rec.signal else "ended"
        return (
            f"{how} {rec.end - rec.start:.2f} s after it started, probably before its start-up "
            "code (and the agent) had run"
        )
    return (
        "started without the run's environment (PYTHONPATH or FORENSICS_BUNDLE cleared), or an "
        "interpreter whose site does not run sitecustomize"
    )


_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OUTPUT_ERROR_RE = re.compile(
    r"^(?:ERROR|INTERNALERROR|E  |[A-Za-z_.]*(?:Error|Exception|Warning)\b|"
    r"[^:]{1,80}: error:|.*No module named|usage:)"
)


def _output_errors(path: Path | None, tail_bytes: int = 65536) -> list[str]:
    """The error lines at the end of the command's output (what a person would scroll to)."""
    if path is None:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - tail_bytes))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    lines = [_ANSI_RE.sub("", ln).rstrip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    errors = [ln[:300] for ln in lines if _OUTPUT_ERROR_RE.match(ln.strip())]
    return errors[-8:] if errors else [ln[:300] for ln in lines[-5:]]


def _error_line(text: str) -> str | None:
    """The line of a pytest error text a person reads first: the exception, else the last."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("E ") or line.startswith("ERROR"):
            return line.removeprefix("E").strip()[:300]
    return lines[-1][:300] if lines else None


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _combine(current: str | None, phase: str, outcome: str) -> str:
    """One outcome per test: a failed setup/teardown is an error, a failed call a failure."""
    if outcome == "failed":
        new = "failed" if phase in ("call", "???") else "error"
    elif outcome == "skipped":
        new = "skipped"
    else:
        new = "passed"
    rank = {"error": 3, "failed": 2, "skipped": 1, "passed": 0}
    if current is None or rank[new] > rank[current]:
        return new
    return current


def _outcome(test: TestRun) -> str | None:
    if test.end is None:
        return None
    result: str | None = None
    for phase, outcome in test.phases.items():
        result = _combine(result, phase, outcome)
    return result


# A death time read by the supervisor rather than stamped by the kernel comes a little late.
_DEATH_TIME_SLACK_S = 0.25


def _killed_by_us(data: BundleData) -> set[int]:
    """Pids the supervisor itself sent SIGKILL (hang and timeout escalation)."""
    pids: set[int] = set()
    for ev in data.events:
        if ev.get("kind") == "signal-sent" and ev.get("signal") == "SIGKILL":
            pids.update(p for p in ev.get("pids") or [] if isinstance(p, int))
    return pids


def _test_at_death(owner: Owner, rec: ProcessRecord) -> TestRun | None:
    """The test its owner process was running when *rec* died (the owner's, when unknown)."""
    if rec.end is None:
        return owner.test
    return test_at(owner.process, rec.end) or test_at(owner.process, rec.end - _DEATH_TIME_SLACK_S)


def _exit_status(rec: ProcessRecord) -> int | None:
    if rec.exit_code is not None:
        return rec.exit_code
    if rec.signal is not None:
        import signal as signal_module

        try:
            return 128 + int(signal_module.Signals[rec.signal])
        except KeyError:
            return None
    return None


def _short_argv(argv: list[str]) -> str:
    text = " ".join(argv) or "?"
    return text if len(text) <= 60 else text[:57] + "..."


def _quote(arg: str) -> str:
    """shlex.quote, but a redacted home (``~/``) stays unquoted so the shell expands it."""
    if arg.startswith("~/"):
        return "~/" + shlex.quote(arg[2:])
    return shlex.quote(arg)


def _shell_command(cwd: str | None, argv: list[str]) -> str:
    command = " ".join(_quote(arg) for arg in argv)
    return f"cd {_quote(cwd)} && {command}" if cwd else command


def _repro(rec: ProcessRecord, nodeids: list[str]) -> str | None:
    """Re-run these tests in one process, in this order, as the process that died ran them."""
    if not nodeids:
        return None
    python = rec.executable or "python"
    args = [python, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    if rec.xdist:
        args += ["-n", "0"]
    # After "--" a test id from a bundle cannot act as an option in a command someone pastes.
    args += ["--", *nodeids]
    return _shell_command(rec.rootdir or rec.cwd, args)


# RSS moves by a few pages in any test (allocator arenas, caches): growth below this is noise.
_GROWTH_NOISE = 1024 * 1024


def _oom_kills(data: BundleData) -> dict[int, dict[str, Any]]:
    """The kernel OOM killer's kills of the run's processes, by pid."""
    found: dict[int, dict[str, Any]] = {}
    oom = data.system.get("oom")
    kills = oom.get("kills") if isinstance(oom, dict) else None
    if isinstance(kills, list):
        for kill in kills:
            if isinstance(kill, dict) and isinstance(kill.get("pid"), int) and kill.get("ours"):
                found[kill["pid"]] = kill
    return found


def _cgroup_oom_kills(data: BundleData) -> list[str]:
    """OOM kills counted by the run's cgroup, or by the surrounding one during the run."""
    cgroup = data.system.get("cgroup")
    if not isinstance(cgroup, dict):
        return []
    run = cgroup.get("run")
    if isinstance(run, dict) and isinstance(run.get("oom_kill"), int) and run["oom_kill"] > 0:
        return [f"oom_kill {run['oom_kill']} in the run's cgroup {run.get('path')}"]
    surrounding = cgroup.get("surrounding")
    if not isinstance(surrounding, dict):
        return []
    before = {
        m.get("path"): m.get("oom_kill")
        for m in surrounding.get("start") or []
        if isinstance(m, dict)
    }
    found = []
    for mem in surrounding.get("end") or []:
        if not isinstance(mem, dict):
            continue
        start, end = before.get(mem.get("path")), mem.get("oom_kill")
        if isinstance(start, int) and isinstance(end, int) and end > start:
            found.append(
                f"oom_kill counter of the surrounding cgroup {mem.get('path')} rose from "
                f"{start} to {end} during the run"
            )
    return found


def _sampled_memory(data: BundleData) -> dict[int, dict[str, Any]]:
    """The sampler's per-process memory (system/memory.json), by pid."""
    memory = data.system.get("memory")
    processes = memory.get("processes") if isinstance(memory, dict) else None
    found: dict[int, dict[str, Any]] = {}
    if isinstance(processes, list):
        for proc in processes:
            if isinstance(proc, dict) and isinstance(proc.get("pid"), int):
                found[proc["pid"]] = proc
    return found
