import pytest
from wordy import answer


def test_number():
    assert answer("What is 5?") == 5


def test_left_to_right():
    assert answer("What is 5 plus 13 multiplied by 2?") == 36
    assert answer("What is -3 minus 4 divided by 7?") == -1


def test_errors():
    with pytest.raises(ValueError, match="unknown operation"):
        answer("What is 52 cubed?")
    with pytest.raises(ValueError, match="syntax error"):
        answer("What is 1 plus plus 2?")
    with pytest.raises(ValueError, match="syntax error"):
        answer("What is?")
