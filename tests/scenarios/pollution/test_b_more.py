import pytest


@pytest.mark.parametrize("n", range(19))
def test_more(n):
    assert str(n).isdigit()
