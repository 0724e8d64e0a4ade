from intervals import merge, total_length


def test_unsorted_input_is_merged():
    assert merge([(5, 8), (1, 3), (2, 6)]) == [(1, 8)]
    assert merge([(10, 12), (1, 2)]) == [(1, 2), (10, 12)]


def test_total_length_of_unsorted_input():
    assert total_length([(5, 8), (1, 3), (2, 6)]) == 7
