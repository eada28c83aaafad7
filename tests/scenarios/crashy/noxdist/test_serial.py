import ctypes


def test_before():
    pass


def test_segv():
    ctypes.string_at(0)


def test_after():
    pass
