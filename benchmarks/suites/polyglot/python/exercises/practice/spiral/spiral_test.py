from spiral import spiral


def test_small():
    assert spiral(0) == []
    assert spiral(1) == [[1]]
    assert spiral(2) == [[1, 2], [4, 3]]


def test_four():
    assert spiral(4) == [
        [1, 2, 3, 4],
        [12, 13, 14, 5],
        [11, 16, 15, 6],
        [10, 9, 8, 7],
    ]
