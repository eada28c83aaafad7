"""A test that spins and says so in its log every half second until pytest-timeout ends it:
its live-log lines (`-o log_cli=true` with `%(asctime)s`) date how long it ran."""

import logging
import time

log = logging.getLogger("spin")


def test_spin_logging():
    start = time.monotonic()
    while True:
        log.info("still spinning after %.1f s", time.monotonic() - start)
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            pass
