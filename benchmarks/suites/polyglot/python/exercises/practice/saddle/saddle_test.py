import pytest
from saddle import saddle_points


def test_one_point():
    assert saddle_points([[9, 8, 7], [5, 3, 2], [6, 6, 7]]) == [(2, 1)]


def test_none_and_empty():
    assert saddle_points([[1, 2], [3, 0]]) == []
    assert saddle_points([]) == []


def test_ties():
    assert saddle_points([[4, 5, 4], [3, 5, 5], [1, 5, 4]]) == [(1, 2), (2, 2), (3, 2)]


def test_irregular():
    with pytest.raises(ValueError):
        saddle_points([[1, 2], [3]])
