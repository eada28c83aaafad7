import ctypes
import multiprocessing


def _crunch():
    ctypes.string_at(0)


def test_pool_worker_crash():
    process = multiprocessing.get_context("spawn").Process(target=_crunch)
    process.start()
    process.join(30)
    assert process.exitcode == 0, f"pool worker exited with {process.exitcode}"


def test_pool_healthy():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(sum, ([1, 2, 3],)) == 6
