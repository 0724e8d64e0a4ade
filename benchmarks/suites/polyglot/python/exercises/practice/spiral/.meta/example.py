def spiral(size):
    grid = [[0] * size for _ in range(size)]
    row, col, dr, dc = 0, 0, 0, 1
    for n in range(1, size * size + 1):
        grid[row][col] = n
        r, c = row + dr, col + dc
        if not (0 <= r < size and 0 <= c < size) or grid[r][c]:
            dr, dc = dc, -dr
        row, col = row + dr, col + dc
    return grid
