class Matrix:
    def __init__(self, text):
        self.rows = [[int(x) for x in line.split()] for line in text.splitlines()]

    def row(self, index):
        return list(self.rows[index - 1])

    def column(self, index):
        return [row[index - 1] for row in self.rows]
