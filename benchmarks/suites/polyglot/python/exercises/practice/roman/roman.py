def to_roman(n):
    pass
