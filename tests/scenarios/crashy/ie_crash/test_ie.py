import ctypes


def test_fine():
    pass


def test_segv():
    ctypes.string_at(0)
