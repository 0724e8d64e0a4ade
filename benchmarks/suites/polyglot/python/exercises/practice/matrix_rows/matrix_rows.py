class Matrix:
    def __init__(self, text):
        pass

    def row(self, index):
        pass

    def column(self, index):
        pass
