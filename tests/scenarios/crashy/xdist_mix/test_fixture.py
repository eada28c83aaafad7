import ctypes

import pytest


@pytest.fixture
def crashes_in_teardown():
    yield 1
    ctypes.string_at(0)


def test_teardown_crash(crashes_in_teardown):
    assert crashes_in_teardown == 1
