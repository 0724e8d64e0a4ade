from run_length import decode, encode


def test_encode():
    assert encode("") == ""
    assert encode("AAAB") == "3AB"
    assert encode("WWWWWWWWWWWWBWWWWWWWWWWWWBBBWWWWWWWWWWWWWWWWWWWWWWWWB") == "12WB12W3B24WB"


def test_decode():
    assert decode("3AB") == "AAAB"
    assert decode("12WB") == "W" * 12 + "B"


def test_round_trip():
    text = "  hsqq qww  "
    assert decode(encode(text)) == text
