from __future__ import annotations

from typing import NamedTuple


class Version(NamedTuple):
    major: int
    minor: int
    patch: int
    pre: str | None = None

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.pre}" if self.pre else core

    def key(self) -> tuple:
        # a pre-release sorts before its release
        return (self.major, self.minor, self.patch, self.pre is None, self.pre or "")


def parse(text: str) -> Version:
    """`MAJOR.MINOR.PATCH[-PRERELEASE]`, with integer components."""
    core, _, pre = text.strip().partition("-")
    parts = core.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"not a version: {text!r}")
    major, minor, patch = parts
    return Version(major, minor, patch, pre or None)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as version `a` is lower than, equal to or higher than `b`."""
    left, right = parse(a).key(), parse(b).key()
    return (left > right) - (left < right)
