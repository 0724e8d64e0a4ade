def split_row(line: str, sep: str = ",") -> list[str]:
    """The fields of one CSV line; a field in double quotes may hold separators, and a
    doubled quote inside it stands for one quote."""
    fields: list[str] = []
    current = ""
    quoted = False
    i = 0
    while i < len(line):
        char = line[i]
        if char == '"':
            if quoted and line[i + 1 : i + 2] == '"':
                current += '"'
                i += 1
            else:
                quoted = not quoted
        elif char == sep and not quoted:
            fields.append(current)
            current = ""
        else:
            current += char
        i += 1
    fields.append(current)
    return fields


def read_rows(text: str, sep: str = ",") -> list[list[str]]:
    return [split_row(line, sep) for line in text.splitlines() if line.strip()]
