import ctypes


def crash_here():
    ctypes.string_at(0)


crash_here()
