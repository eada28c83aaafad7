import ctypes
import multiprocessing


def _segv():
    ctypes.string_at(0)


def test_fork_child_crash():
    proc = multiprocessing.get_context("fork").Process(target=_segv)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0


def test_after_child():
    # loadscope runs a module on one worker, in order: this runs after the child crashed.
    pass
