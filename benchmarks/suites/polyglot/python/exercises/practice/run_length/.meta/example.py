import re


def encode(text):
    return "".join(
        (str(len(run)) if len(run) > 1 else "") + run[0]
        for run in (m.group(0) for m in re.finditer(r"(.)\1*", text, re.S))
    )


def decode(text):
    return "".join(ch * int(count or 1) for count, ch in re.findall(r"(\d*)(\D)", text, re.S))
