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

from forensics.analyze.attribution import attribute
from forensics.analyze.bundle_source import BundleData, ProcessRecord, TestRun, load_bundle
from forensics.analyze.hangs import find_hangs, timeout_kill
from forensics.analyze.logs.signatures import normalize
from forensics.analyze.native import apply_native, native_death
from forensics.analyze.signals import (
    SignalLog,
    apply_sender,
    handled_signals,
    signal_sender,
    timeline_marks,
)
from forensics.model import (
    Evidence,
    Incident,
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
_INFRA_RE = re.compile(
    r"Connection(?:Refused|Reset|Aborted)Error|Connection refused|Connection reset|"
    r"Name or service not known|Temporary failure in name resolution|getaddrinfo failed|"
    r"Max retries exceeded|ReadTimeout|ConnectTimeout|timed out|HTTP Error 5\d\d|"
    r"\b50[234] (?:Bad Gateway|Service Unavailable|Gateway Time-?out)|"
    r"error sending request for url",
    re.IGNORECASE,
)


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
        self.complete = isinstance(data.manifest.get("end"), (int, float))
        self.signals = SignalLog.load(data.path)

    # --- processes -> incidents --------------------------------------------------------------

    def build(self) -> Triage:
        data = self.data
        controller = self._controller()
        hangs = find_hangs(data, self._prior_and_repro)
        self.incidents.extend(hangs.incidents)
        for rec in sorted(data.processes.values(), key=lambda r: (r.end or r.start or 0, r.pid)):
            if rec.pid in hangs.explained:
                continue
            incident = self._death(rec)
            if incident is not None:
                self.incidents.append(incident)
        self._crash_items_without_incident()
        self._failed_tests()
        self._internal_errors()
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
        return Triage(
            source=Source(kind="bundle", paths=[str(data.path)]),
            run=self._run(controller),
            incidents=self.incidents,
            timelines=self._timelines(),
            notes=self.notes,
            environment=self._environment(owners),
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
            if rec.role in ("controller", "single"):
                return rec
        return None

    def _death(self, rec: ProcessRecord) -> Incident | None:
        fatal = next((b for b in rec.faults if b.fatal), None)
        signal = rec.signal or (fatal.signal if fatal else None)
        if rec.survivor and not fatal:
            return None
        if self._ended_by_its_test(rec, signal):
            return None
        if self._ended_by_xdist_shutdown(rec, signal, fatal is not None):
            self.notes.append(
                f"worker {rec.worker} was idle and ended by {signal} while pytest-xdist shut down"
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
        open_test = rec.open_test
        in_pytest = rec.role is not None
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
            worker=rec.worker or rec.parent_worker,
            pid=rec.pid,
            signal=signal,
            exit_code=_exit_status(rec),
            time=rec.end,
        )
        self._attach_test(incident, rec, open_test)
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
                Evidence(source=f"{rec.fault_path}:{fatal.first_line}", excerpt=fatal.text[:4000])
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
            if isinstance(run, dict) and isinstance(run.get("limit_bytes"), int):
                limit = run["limit_bytes"]
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

    def _ended_by_its_test(self, rec: ProcessRecord, signal: str | None) -> bool:
        """A process a test started, killed by SIGTERM/SIGKILL while that test went on to pass.

        Pools and fixtures end their workers this way (``Pool.__exit__`` calls terminate());
        blaming a healthy test for its own cleanup would be wrong.
        """
        if rec.role is not None or signal not in KILL_SIGNALS or rec.pid in self.oom_pids:
            return False
        parent = self.data.processes.get(rec.ppid or -1)
        if parent is None or rec.parent_test is None:
            return False
        sender = signal_sender(self.data, rec.pid, signal, self.signals)
        if sender is not None and not sender.own_test_tree and sender.kind != "forensics":
            return False  # the kernel says someone else sent it
        for test in parent.tests:
            if test.nodeid == rec.parent_test:
                return test.end is not None and "failed" not in test.phases.values()
        return False

    def _ended_by_xdist_shutdown(self, rec: ProcessRecord, signal: str | None, fatal: bool) -> bool:
        """An idle worker that xdist itself killed (execnet's popen.kill) while shutting down."""
        if rec.role != "worker" or fatal or signal not in KILL_SIGNALS:
            return False
        if rec.open_test is not None or rec.open_collect is not None or rec.pid in self.oom_pids:
            return False
        controller = self._controller()
        shutdown = controller.shutdown_at if controller is not None else None
        return shutdown is not None and rec.end is not None and rec.end >= shutdown

    def _cause(self, rec: ProcessRecord, signal: str | None, fatal: bool) -> tuple[str, str]:
        if fatal or signal in NATIVE_SIGNALS:
            return "native-crash", "high" if fatal and signal else "medium"
        if signal == "SIGKILL" and rec.pid in self.oom_pids:
            return "oom-kill", "high"
        if signal in KILL_SIGNALS:
            return "external-kill", "medium" if signal == "SIGKILL" else "high"
        if signal is not None:
            return "external-kill", "low"
        if rec.exit_code is not None or rec.open_test is not None:
            return "unexpected-exit", "medium" if rec.exit_code is not None else "low"
        return "unknown", "low"

    def _attach_test(self, incident: Incident, rec: ProcessRecord, test: TestRun | None) -> None:
        if test is not None:
            incident.test = test.nodeid
            incident.phase = test.open_phase
            incident.prior_tests = [t.nodeid for t in rec.tests[:-1]]
            incident.repro = _repro(rec, [*incident.prior_tests, test.nodeid])
        elif rec.open_collect is not None:
            incident.test = rec.open_collect
            incident.phase = "collect"
            incident.prior_tests = [t.nodeid for t in rec.tests]
            incident.repro = _repro(rec, [rec.open_collect])
        elif rec.parent_test is not None:
            # A process a test started: blame the test, and say it was the child that died.
            incident.test = rec.parent_test
            incident.extra["in_child_process"] = True
            parent = self.data.processes.get(rec.ppid or -1)
            if parent is not None and parent.role is not None:
                # Only what ran before the test that started the child: later tests are
                # not suspects, and re-running them could crash for reasons of their own.
                incident.prior_tests, incident.repro = self._prior_and_repro(
                    parent, rec.parent_test
                )
                incident.phase = _phase_at(parent, rec.parent_test, rec.end)
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
        for raw in self.data.controller_records:
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

    # --- reports that no dead process explains -----------------------------------------------

    def _crash_items_without_incident(self) -> None:
        blamed = {(i.worker, i.test) for i in self.incidents}
        for raw in self.data.controller_records:
            if raw.get("kind") != "crash-item":
                continue
            worker, nodeid = raw.get("worker"), raw.get("nodeid")
            if not isinstance(nodeid, str) or (worker, nodeid) in blamed:
                continue
            blamed.add((worker, nodeid))
            down = next(
                (
                    r
                    for r in self.data.controller_records
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

    def _failed_tests(self) -> None:
        crashed = {(i.test, i.worker) for i in self.incidents if i.test}
        crashed_tests = {i.test for i in self.incidents if i.test}
        for rec in self.data.processes.values():
            if rec.role not in ("worker", "single"):
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
        for raw in self.data.controller_records:
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
        )

    def _counts(self) -> TestCounts:
        """Outcomes as pytest counts them: from the controller's reports when there is one."""
        reports = [r for r in self.data.controller_records if r.get("kind") == "report"]
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
                if rec.role not in ("worker", "single"):
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


def _phase_at(parent: ProcessRecord, nodeid: str, when: float | None) -> str | None:
    for test in parent.tests:
        if test.nodeid == nodeid:
            return test.open_phase or ("call" if "call" in test.phases else None)
    return None


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
    args += nodeids
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
