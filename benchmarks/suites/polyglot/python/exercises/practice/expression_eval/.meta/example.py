import re


def evaluate(expression):
    tokens = re.findall(r"\d+|[-+*/()]|\S", expression)
    position = 0

    def peek():
        return tokens[position] if position < len(tokens) else None

    def take():
        nonlocal position
        if position >= len(tokens):
            raise ValueError("unexpected end")
        position += 1
        return tokens[position - 1]

    def expr():
        value = term()
        while peek() in ("+", "-"):
            value = value + term() if take() == "+" else value - term()
        return value

    def term():
        value = factor()
        while peek() in ("*", "/"):
            if take() == "*":
                value *= factor()
            else:
                divisor = factor()
                if divisor == 0:
                    raise ZeroDivisionError("division by zero")
                quotient = abs(value) // abs(divisor)
                value = quotient if (value >= 0) == (divisor >= 0) else -quotient
        return value

    def factor():
        token = take()
        if token == "-":
            return -factor()
        if token == "(":
            value = expr()
            if take() != ")":
                raise ValueError("missing )")
            return value
        if token.isdigit():
            return int(token)
        raise ValueError(f"unexpected {token!r}")

    value = expr()
    if peek() is not None:
        raise ValueError(f"unexpected {peek()!r}")
    return value
