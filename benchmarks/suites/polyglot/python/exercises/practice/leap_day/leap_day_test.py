from leap_day import has_leap_day


def test_ordinary_years():
    assert not has_leap_day(2023)
    assert not has_leap_day(1900)


def test_leap_years():
    assert has_leap_day(2024)
    assert has_leap_day(2000)
    assert has_leap_day(1600)
