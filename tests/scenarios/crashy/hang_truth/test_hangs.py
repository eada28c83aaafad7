import subprocess
import sys
import threading


def recurse(n):
    return recurse(n + 1) if n < 300 else spin()


def spin():
    junk = []
    while True:
        junk.append(bytes(4096))
        if len(junk) > 20000:
            junk = []


def test_busy_in_python():
    recurse(0)


def test_waits_for_a_dead_child():
    helper = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    helper.wait()
    lock = threading.Lock()
    lock.acquire()
    lock.acquire()
