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


def test_a_line_that_exactly_fits_is_kept():
    assert wrap("hello world", 11) == ["hello world"]


def test_paragraph_fills_each_line():
    text = "the quick brown fox jumps over the lazy dog"
    assert wrap(text, 9) == ["the quick", "brown fox", "jumps", "over the", "lazy dog"]
    assert all(len(line) <= 9 for line in wrap(text, 9))
