from interval_merge import merge


def test_overlaps():
    assert merge([(1, 3), (2, 6), (8, 10), (15, 18)]) == [(1, 6), (8, 10), (15, 18)]


def test_touching_and_unsorted():
    assert merge([(3, 5), (1, 3)]) == [(1, 5)]
    assert merge([(5, 7), (1, 2), (2, 4), (6, 6)]) == [(1, 4), (5, 7)]


def test_empty_and_nested():
    assert merge([]) == []
    assert merge([(1, 10), (2, 3)]) == [(1, 10)]
