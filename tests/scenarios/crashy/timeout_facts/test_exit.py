"""A worker that leaves 0.2 s into a test with os._exit(1), which is how pytest-timeout's thread
method ends one too: only the time it took tells the two apart."""

import os
import time


def test_early_exit():
    time.sleep(0.2)
    os._exit(1)
