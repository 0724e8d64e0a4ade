from csvlite import read_rows, split_row


def test_plain_fields():
    assert split_row("a,b,c") == ["a", "b", "c"]


def test_quoted_comma():
    assert split_row('1,"x, y",2') == ["1", "x, y", "2"]


def test_empty_fields():
    assert split_row(",a,,") == ["", "a", "", ""]


def test_other_separator():
    assert read_rows("a;b\n\nc;d\n", sep=";") == [["a", "b"], ["c", "d"]]
