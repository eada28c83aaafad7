import threading
import time


def test_lock_order():
    accounts, audit = threading.Lock(), threading.Lock()

    def transfer():
        with accounts:
            time.sleep(0.2)
            with audit:
                pass

    def report():
        with audit:
            time.sleep(0.2)
            with accounts:
                pass

    threads = [threading.Thread(target=transfer), threading.Thread(target=report)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_quick():
    assert True
