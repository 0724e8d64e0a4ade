import re
import unicodedata


def slugify(text: str, separator: str = "-") -> str:
    """A lowercase ASCII name for `text`: runs of other characters become one separator."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    return separator.join(words)
