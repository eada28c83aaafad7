import os


def test_needs_worker():
    # Aborts only inside an xdist worker: a run in one plain process cannot reproduce it.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.abort()
