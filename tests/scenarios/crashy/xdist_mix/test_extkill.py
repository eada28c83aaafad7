import os
import subprocess
import sys
import time

KILLER = "import os, signal, sys, time; time.sleep(0.2); os.kill(int(sys.argv[1]), signal.SIGKILL)"


def test_killed_by_helper():
    # Another process kills this worker; the worker does not kill itself.
    subprocess.Popen([sys.executable, "-c", KILLER, str(os.getpid())])
    time.sleep(30)
