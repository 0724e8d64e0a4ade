from digit_sum import digital_root


def test_single_digit():
    assert digital_root(0) == 0
    assert digital_root(7) == 7


def test_several_rounds():
    assert digital_root(942) == 6
    assert digital_root(132189) == 6
    assert digital_root(493193) == 2
