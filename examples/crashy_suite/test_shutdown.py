import multiprocessing


def test_queue_shutdown_race():
    queue = multiprocessing.Queue()
    queue.close()
    # What the reader thread sees when shutdown closes the queue first.
    raise ValueError(f"Queue {queue!r} is closed")


def test_queue_roundtrip():
    queue = multiprocessing.Queue()
    queue.put(1)
    assert queue.get(timeout=5) == 1
