def digital_root(n):
    pass
