from balanced import is_balanced


def test_balanced():
    assert is_balanced("")
    assert is_balanced("f(a[0], {b: c})")


def test_unbalanced():
    assert not is_balanced("(]")
    assert not is_balanced("((")
    assert not is_balanced("}{")
    assert not is_balanced("{[}]")
