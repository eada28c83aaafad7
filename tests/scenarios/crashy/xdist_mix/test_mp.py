import multiprocessing

from crashhelpers import child_segv


def test_spawn_child_segv():
    proc = multiprocessing.get_context("spawn").Process(target=child_segv, args=("spawn_child",))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0


def test_fork_child_segv():
    proc = multiprocessing.get_context("fork").Process(target=child_segv, args=("fork_child",))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
