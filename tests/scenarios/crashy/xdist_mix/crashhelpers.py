"""Code the crash scenarios run in child processes (importable by spawn children)."""

import ctypes
import os


def record_pid(name):
    os.makedirs("pids", exist_ok=True)
    with open(os.path.join("pids", name), "w") as fh:
        fh.write(str(os.getpid()))


def child_segv(name):
    record_pid(name)
    ctypes.string_at(0)
