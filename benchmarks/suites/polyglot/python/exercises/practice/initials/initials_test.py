from initials import initials


def test_two_words():
    assert initials("ada lovelace") == "AL"


def test_hyphen():
    assert initials("jean-luc picard") == "JLP"


def test_extra_spaces():
    assert initials("  grace   brewster hopper ") == "GBH"
