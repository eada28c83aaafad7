def test_uses_server(managed_server):
    assert managed_server.poll() is None


def test_quick():
    assert 1 + 1 == 2


def test_also_quick():
    assert "a".upper() == "A"
