from diamond import diamond


def test_a():
    assert diamond("A") == ["A"]


def test_c():
    assert diamond("C") == [
        "  A  ",
        " B B ",
        "C   C",
        " B B ",
        "  A  ",
    ]
