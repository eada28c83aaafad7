"""Issue 15's figures of time, for real: a runaway recursion next to tests that pass, fail and
log, so that `--durations`, `--junitxml` and `-o log_cli=true` have something to say about each.
Under pytest-timeout's thread method the recursion takes its xdist worker down; under the
signal method it fails with `Failed: Timeout`."""

import logging
import time

log = logging.getLogger("facts")


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def test_ok_1():
    log.info("sleeping 0.3 s")
    time.sleep(0.3)


def test_slow_ok():
    log.info("sleeping 1.5 s")
    time.sleep(1.5)


def test_fails():
    log.info("about to fail")
    assert 1 + 1 == 3


def test_runaway_recursion():
    log.info("starting fib(60)")
    # Exponential recursion: never returns within any timeout a suite would set.
    assert fib(60) > 0


def test_ok_2():
    log.info("sleeping 0.3 s")
    time.sleep(0.3)


def test_ok_3():
    time.sleep(0.2)
