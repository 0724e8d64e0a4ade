def word_frequencies(text):
    pass
