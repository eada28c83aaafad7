import multiprocessing
import random
import threading
import time

import _runtime


def test_start_runtime():
    # Leaves the runtime behind, as a test that forgets to shut it down does.
    _runtime.RUNTIME = {"cancelled": True}


def test_runtime_shutdown():
    # Serially this runs right after test_start_runtime and cleans up after it.
    _runtime.RUNTIME = None
    # The shutdown path closes the results queue while a reader still uses it: a real race
    # that the closer usually wins, with a different queue address in every run.
    q = multiprocessing.Queue()
    closer = threading.Timer(0.0 if random.random() < 0.8 else 0.5, q.close)
    closer.start()
    time.sleep(0.1)
    try:
        q.put("result")
        assert q.get(timeout=5) == "result"
    finally:
        closer.cancel()
        q.close()
        q.join_thread()
