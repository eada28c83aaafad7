"""Two locks taken in opposite orders: the main thread (in the test) and a helper thread each
hold one and wait for the other.  Used by test_hang_e2e.py (root) and test_unprivileged.py."""

import threading
import time


def test_ok():
    pass


def test_deadlock():
    a, b = threading.Lock(), threading.Lock()

    def first_then_second():
        with a:
            time.sleep(0.3)
            with b:
                pass

    def second_then_first():
        with b:
            time.sleep(0.3)
            with a:
                pass

    helper = threading.Thread(target=first_then_second)
    helper.start()
    second_then_first()
    helper.join()
