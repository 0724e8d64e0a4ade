def find(items, value):
    low, high = 0, len(items) - 1
    while low <= high:
        middle = (low + high) // 2
        if items[middle] == value:
            return middle
        if items[middle] < value:
            low = middle + 1
        else:
            high = middle - 1
    raise ValueError("value not in items")
