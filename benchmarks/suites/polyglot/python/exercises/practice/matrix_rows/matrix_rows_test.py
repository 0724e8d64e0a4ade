from matrix_rows import Matrix


def test_rows_and_columns():
    m = Matrix("1 2 3\n4 5 6\n7 8 9")
    assert m.row(2) == [4, 5, 6]
    assert m.column(3) == [3, 6, 9]


def test_single():
    m = Matrix("42")
    assert m.row(1) == [42] and m.column(1) == [42]
