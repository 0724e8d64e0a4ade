def saddle_points(matrix):
    if any(len(row) != len(matrix[0]) for row in matrix):
        raise ValueError("irregular matrix")
    columns = list(zip(*matrix, strict=True))
    return [
        (r + 1, c + 1)
        for r, row in enumerate(matrix)
        for c, value in enumerate(row)
        if value == max(row) and value == min(columns[c])
    ]
