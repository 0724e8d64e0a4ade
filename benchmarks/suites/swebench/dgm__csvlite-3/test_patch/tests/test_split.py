from csvlite import read_rows, split_row


def test_plain_fields():
    assert split_row("a,b,c") == ["a", "b", "c"]


def test_quoted_comma():
    assert split_row('1,"x, y",2') == ["1", "x, y", "2"]


def test_empty_fields():
    assert split_row(",a,,") == ["", "a", "", ""]


def test_other_separator():
    assert read_rows("a;b\n\nc;d\n", sep=";") == [["a", "b"], ["c", "d"]]


def test_doubled_quote_is_one_quote():
    assert split_row('1,"say ""hi""",x') == ["1", 'say "hi"', "x"]


def test_field_that_is_only_a_quote():
    assert read_rows('"""",z') == [['"', "z"]]
