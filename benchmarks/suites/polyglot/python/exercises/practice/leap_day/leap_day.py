def has_leap_day(year):
    pass
