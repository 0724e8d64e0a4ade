import pytest
from coin_change import fewest_coins


def test_simple():
    assert fewest_coins([1, 5, 10, 25], 15) == [5, 10]
    assert fewest_coins([1, 5, 10], 0) == []


def test_not_greedy():
    assert fewest_coins([1, 4, 15, 20, 50], 23) == [4, 4, 15]


def test_impossible():
    with pytest.raises(ValueError):
        fewest_coins([5, 10], 3)
    with pytest.raises(ValueError):
        fewest_coins([1], -1)
