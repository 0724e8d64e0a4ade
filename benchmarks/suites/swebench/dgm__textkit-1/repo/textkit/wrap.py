def wrap(text: str, width: int) -> list[str]:
    """Break `text` into lines of at most `width` characters, at spaces.

    A word longer than `width` stands alone on its line.
    """
    if width < 1:
        raise ValueError("width must be positive")
    lines: list[str] = []
    line = ""
    for word in text.split():
        if not line:
            line = word
        elif len(line) + 1 + len(word) < width:
            line += " " + word
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines
