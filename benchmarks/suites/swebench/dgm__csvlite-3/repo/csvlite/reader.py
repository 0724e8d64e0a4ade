def split_row(line: str, sep: str = ",") -> list[str]:
    """The fields of one CSV line; a field in double quotes may hold separators."""
    fields: list[str] = []
    current = ""
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif char == sep and not quoted:
            fields.append(current)
            current = ""
        else:
            current += char
    fields.append(current)
    return fields


def read_rows(text: str, sep: str = ",") -> list[list[str]]:
    return [split_row(line, sep) for line in text.splitlines() if line.strip()]
