def test_fine():
    pass


def test_also_fine():
    pass
