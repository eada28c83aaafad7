"""A child process manager whose exit waits without a timeout when told to be patient."""

from __future__ import annotations

import subprocess
import sys

# Says "ready" once SIGTERM is ignored, so terminate() never races the handler.
STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(600)\n"
)


class ManagedProcess:
    def __init__(self, patient: bool) -> None:
        self.patient = patient

    def __enter__(self) -> subprocess.Popen[bytes]:
        self.proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        self.proc.stdout.readline()
        return self.proc

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        if not self.patient:
            self.proc.kill()
        self.proc.wait()
