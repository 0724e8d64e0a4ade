import pytest

from intervals import merge, total_length


def test_overlapping_intervals_are_joined():
    assert merge([(1, 3), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]


def test_touching_intervals_are_joined():
    assert merge([(1, 2), (2, 4)]) == [(1, 4)]


def test_nothing_to_merge():
    assert merge([]) == []


def test_backwards_interval_is_refused():
    with pytest.raises(ValueError):
        merge([(3, 1)])


def test_total_length():
    assert total_length([(1, 3), (2, 6), (8, 10)]) == 7


def test_result_is_sorted_by_start():
    assert merge([(1, 2), (4, 5), (7, 9)]) == [(1, 2), (4, 5), (7, 9)]
