def vowel_count(text):
    pass
