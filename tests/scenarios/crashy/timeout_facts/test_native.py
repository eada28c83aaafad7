"""Crashes the kernel reports in its own log: a read of address 8 (a segfault) and of a
non-canonical address (a general protection fault), both in libc's memcpy via ctypes."""

import ctypes


def test_bad_read():
    ctypes.string_at(8, 8)


def test_noncanonical_read():
    ctypes.string_at(0x8000000000000000, 8)
