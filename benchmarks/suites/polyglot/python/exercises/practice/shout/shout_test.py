from shout import shout


def test_word():
    assert shout("hello") == "HELLO!"


def test_sentence():
    assert shout("make it so") == "MAKE IT SO!"


def test_empty():
    assert shout("") == "!"
