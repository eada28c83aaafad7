import os

import _codec


def test_decode():
    if _codec.CODEC is not None:
        # The native decoder was initialized by another test with other settings: it aborts.
        os.abort()
