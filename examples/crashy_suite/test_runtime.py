"""A process-global runtime, initialised once, that breaks when a second test reuses it."""

import os

_RUNTIME = {"initialised": False}


def _start_runtime():
    if _RUNTIME["initialised"]:
        # The real-world version: stale cancellation tokens in a global runtime -> abort().
        os.abort()
    _RUNTIME["initialised"] = True


def test_first_runtime():
    _start_runtime()


def test_unrelated():
    assert sum(range(10)) == 45


def test_second_runtime():
    _start_runtime()
