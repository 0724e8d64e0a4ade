import operator

OPERATIONS = {
    "plus": operator.add,
    "minus": operator.sub,
    "multiplied by": operator.mul,
    "divided by": operator.floordiv,
}


def _number(word):
    try:
        return int(word)
    except ValueError:
        raise ValueError("syntax error") from None


def answer(question):
    if not question.startswith("What is") or not question.endswith("?"):
        raise ValueError("unknown operation")
    words = question[len("What is") : -1].replace("multiplied by", "multiplied_by")
    words = words.replace("divided by", "divided_by").split()
    if not words:
        raise ValueError("syntax error")
    total = _number(words[0])
    rest = words[1:]
    while rest:
        name = rest[0].replace("_", " ")
        if name not in OPERATIONS:
            if name.lstrip("-").isdigit():
                raise ValueError("syntax error")
            raise ValueError("unknown operation")
        if len(rest) < 2:
            raise ValueError("syntax error")
        total = OPERATIONS[name](total, _number(rest[1]))
        rest = rest[2:]
    return total
