import os

import _runtime


def test_client_uses_runtime():
    if _runtime.RUNTIME is not None and _runtime.RUNTIME["cancelled"]:
        # block_on() on a runtime whose tokens another test cancelled: the binding aborts.
        os.abort()
