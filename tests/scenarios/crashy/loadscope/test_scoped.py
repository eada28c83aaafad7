import ctypes
import os


class TestHealthy:
    def test_one(self):
        pass

    def test_two(self):
        pass


class TestCrashy:
    def test_first(self):
        pass

    def test_second(self):
        pass

    def test_crash(self):
        # xdist's loadscope hands a crashed test to the replacement worker again: crash once only,
        # so the run ends (the marker is in the run's own copy of this suite).
        if not os.path.exists("crashed-once"):
            open("crashed-once", "w").close()
            ctypes.string_at(0)
