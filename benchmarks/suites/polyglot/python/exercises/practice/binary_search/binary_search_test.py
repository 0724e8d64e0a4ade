import pytest
from binary_search import find


def test_found():
    items = [1, 3, 4, 6, 8, 9, 11]
    assert find(items, 6) == 3
    assert find(items, 1) == 0
    assert find(items, 11) == 6


def test_missing():
    with pytest.raises(ValueError):
        find([1, 3, 5], 4)
    with pytest.raises(ValueError):
        find([], 1)
