"""Seed 000's real case in small: a runaway recursion in Python that pytest-timeout's thread
method ends with os._exit(1), next to ordinary passing and failing tests."""

import time


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def test_ok_1():
    time.sleep(0.2)


def test_ok_2():
    time.sleep(0.2)


def test_fails():
    assert 1 + 1 == 3


def test_runaway_recursion():
    # Exponential recursion: never returns within any timeout a suite would set.
    assert fib(60) > 0


def test_ok_3():
    time.sleep(0.2)


def test_ok_4():
    time.sleep(0.2)
