import re


def initials(name):
    return "".join(word[0].upper() for word in re.split(r"[\s-]+", name) if word)
