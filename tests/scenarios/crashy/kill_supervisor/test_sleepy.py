import os
import subprocess
import sys
import time

import pytest


@pytest.mark.parametrize("n", range(4))
def test_sleepy(n):
    os.makedirs("alive", exist_ok=True)
    # A grandchild too, so the test proves the whole tree ends, not just the workers.
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    for pid in (os.getpid(), child.pid):
        with open(os.path.join("alive", f"{pid}"), "w") as fh:
            fh.write(str(pid))
    time.sleep(300)
