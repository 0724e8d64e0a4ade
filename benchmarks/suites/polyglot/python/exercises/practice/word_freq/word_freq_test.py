from word_freq import word_frequencies


def test_simple():
    assert word_frequencies("one fish two fish") == {"one": 1, "fish": 2, "two": 1}


def test_case_and_punctuation():
    assert word_frequencies("Go, go, GO!") == {"go": 3}


def test_apostrophes():
    text = "'Don't' stop, don't!"
    assert word_frequencies(text) == {"don't": 2, "stop": 1}
