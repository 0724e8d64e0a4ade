def diamond(letter):
    size = ord(letter) - ord("A")
    top = []
    for i in range(size + 1):
        row = [" "] * (2 * size + 1)
        row[size - i] = row[size + i] = chr(ord("A") + i)
        top.append("".join(row))
    return top + top[-2::-1]
