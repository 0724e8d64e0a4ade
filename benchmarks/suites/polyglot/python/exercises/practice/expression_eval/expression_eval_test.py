import pytest
from expression_eval import evaluate


def test_precedence():
    assert evaluate("2 + 3 * 4") == 14
    assert evaluate("(2 + 3) * 4") == 20


def test_unary_and_division():
    assert evaluate("-7 / 2") == -3
    assert evaluate("-(1 - 4) * 2") == 6


def test_errors():
    with pytest.raises(ValueError):
        evaluate("2 +")
    with pytest.raises(ValueError):
        evaluate("(1")
    with pytest.raises(ZeroDivisionError):
        evaluate("1 / (2 - 2)")
