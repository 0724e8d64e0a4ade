def build_order(dependencies):
    pass
