"""What ended a run from outside pytest, and the infrastructure it depended on failing.

The kernel's OOM killer and its segfault/trap lines (a pasted ``dmesg``), the exit code a CI
runner reports (one above 128 names a signal), a CI cancellation (with the silence before it
when the log is timestamped: a hang the runner's time limit ended), and network or registry
failure lines.  Deaths a shell or a runtime reports are :mod:`.deaths`'.
"""

from __future__ import annotations

from forensics.analyze.logs import patterns as P
from forensics.analyze.logs.deaths import Deaths
from forensics.analyze.logs.decorations import timestamp
from forensics.analyze.logs.findings import InfraError, KillEvent
from forensics.analyze.logs.kernel import kernel_fault
from forensics.analyze.logs.scan.blocks import Line
from forensics.analyze.logs.scan.logscan import LogScan, cap


class Kills:
    """Kill, exit-code, cancel, kernel and infrastructure lines."""

    def __init__(self, scan: LogScan, deaths: Deaths) -> None:
        self.scan = scan
        self._deaths = deaths

    def oom(self, line: Line) -> bool:
        """The kernel's ``Out of memory: Killed process 1234 (python)``."""
        text = line.text
        oom = P.OOM.search(text)
        if not oom:
            return False
        pid = oom.group("pid") or oom.group("rpid")
        self.scan.add(
            self.scan.kills,
            KillEvent(
                "oom",
                line.lineno,
                cap(text),
                "SIGKILL",
                None,
                int(pid) if pid else None,
                oom.group("comm"),
            ),
        )
        self._deaths.watch(line.lineno)  # a child's OOM kill in a test that then passed
        return True

    def exit_code(self, line: Line) -> bool:
        """``Process completed with exit code 137``: the run's exit code, a signal above 128."""
        text = line.text
        code = P.EXIT_CODE.search(text)
        if not code:
            return False
        value = int(code.group("code"))
        self.scan.exit_code = value
        if value in P.SIGNAL_BY_EXIT:
            self.scan.add(
                self.scan.kills,
                KillEvent("exit-code", line.lineno, cap(text), P.SIGNAL_BY_EXIT[value], value),
            )
        return True

    def canceled(self, line: Line) -> bool:
        """``The operation was canceled.``, ``Cancelling nested steps due to timeout``."""
        text = line.text
        if not P.CANCELED.search(text):
            return False
        silence = None
        prev = line.prev
        now, before = timestamp(line.dated), timestamp(prev) if prev else None
        if now is not None and before is not None:
            silence = max(0.0, now - before)
        self.scan.add(
            self.scan.kills,
            KillEvent("canceled", line.lineno, cap(text), None, None, silence_s=silence),
        )
        return True

    def kernel(self, line: Line) -> bool:
        """The kernel's ``segfault at`` and ``traps:`` lines."""
        fault = kernel_fault(line.text, line.lineno, cap(line.text))
        if fault is None:
            return False
        self.scan.add(self.scan.kernel_faults, fault)
        return True

    def infra_line(self, line: Line) -> bool:
        """A network or registry failure line; the last thing a trigger line is tried as."""
        if not P.INFRA.search(line.text):
            return False
        self.infra(line.text, line.lineno)
        return True

    def infra(self, text: str, lineno: int) -> None:
        self.scan.infra_count += 1
        host = P.HTTP_HOST.search(text)
        self.scan.add(
            self.scan.infra, InfraError(cap(text), lineno, host.group("host") if host else None)
        )
