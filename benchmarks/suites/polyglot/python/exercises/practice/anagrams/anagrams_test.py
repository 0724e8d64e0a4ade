from anagrams import find_anagrams


def test_finds():
    assert find_anagrams("listen", ["enlists", "google", "inlets", "banana", "Silent"]) == [
        "inlets",
        "Silent",
    ]


def test_not_itself():
    assert find_anagrams("Stop", ["stop", "Tops", "POTS"]) == ["Tops", "POTS"]
