import ctypes


def _parse(buffer_address: int) -> bytes:
    # Stands in for a native extension that trusts a pointer it should not.
    return ctypes.string_at(buffer_address, 16) if buffer_address > 4096 else ctypes.c_char.from_address(buffer_address).value


def test_parse_valid_buffer():
    data = ctypes.create_string_buffer(b"0123456789abcdef")
    assert _parse(ctypes.addressof(data)) == b"0123456789abcdef"


def test_parse_corrupt_buffer():
    _parse(8)
