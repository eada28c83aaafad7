import ctypes
import os


def test_segv():
    ctypes.string_at(0)


def test_abort():
    os.abort()
