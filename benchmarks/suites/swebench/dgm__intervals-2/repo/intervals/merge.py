Interval = tuple[int, int]


def merge(intervals: list[Interval]) -> list[Interval]:
    """Join overlapping or touching intervals; the result is sorted by start."""
    merged: list[Interval] = []
    for start, end in intervals:
        if start > end:
            raise ValueError(f"interval ({start}, {end}) ends before it starts")
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def total_length(intervals: list[Interval]) -> int:
    return sum(end - start for start, end in merge(intervals))
