from vowel_count import vowel_count


def test_none():
    assert vowel_count("rhythm") == 0


def test_mixed_case():
    assert vowel_count("Archive Of Agents") == 6


def test_empty():
    assert vowel_count("") == 0
