import pytest

import _codec


@pytest.mark.parametrize("n", range(30))
def test_fill(n):
    assert n >= 0


def test_configure_codec():
    _codec.CODEC = "zstd"
