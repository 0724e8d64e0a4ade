import pytest

from textkit import wrap


def test_short_text_is_one_line():
    assert wrap("hello world", 40) == ["hello world"]


def test_words_longer_than_the_width_stand_alone():
    assert wrap("a extraordinary b", 5) == ["a", "extraordinary", "b"]


def test_no_text_no_lines():
    assert wrap("   ", 10) == []


def test_width_must_be_positive():
    with pytest.raises(ValueError):
        wrap("text", 0)
