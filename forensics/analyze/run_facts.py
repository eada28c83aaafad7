"""The run's facts from the manifest and the journals: command, counts, an early exit, the
environment, per-process timelines, processes the agent did not cover."""

from __future__ import annotations

import re
from typing import Any

from forensics.analyze.bundle_source import ProcessRecord, TestRun
from forensics.analyze.reported import _error_line
from forensics.analyze.triage_state import TriageState, _dict, _short_argv
from forensics.model import (
    NotCovered,
    ProcessTimeline,
    Run,
    TestCounts,
    TimelineTest,
)

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


def _output_errors(tail: bytes) -> list[str]:
    """The error lines at the end of the command's output (what a person would scroll to),
    from its last bytes, which the console step kept as it scanned the output."""
    text = tail.decode("utf-8", "replace")
    lines = [_ANSI_RE.sub("", ln).rstrip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    errors = [ln[:300] for ln in lines if _OUTPUT_ERROR_RE.match(ln.strip())]
    return errors[-8:] if errors else [ln[:300] for ln in lines[-5:]]


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


class RunFacts(TriageState):
    """The run section of the triage."""

    # The end of output.log, kept by the console step's scan (analyze/console.py).
    console_tail: bytes = b""

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
            errors = _output_errors(self.console_tail)
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
