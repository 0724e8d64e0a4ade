"""What a review finds: risk levels, findings, and a review's result."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return list(Risk).index(self)


def highest(levels: Iterable[Risk]) -> Risk:
    return max(levels, key=lambda r: r.rank, default=Risk.LOW)


@dataclass(frozen=True)
class Finding:
    """One thing a reviewer saw: which rule, where (line 0: the file or the change as a
    whole), what it looks like, and why it matters."""

    rule: str
    level: Risk
    file: str
    line: int
    excerpt: str
    note: str
    reviewer: str = "static"

    def key(self) -> tuple[str, str, str]:
        """What makes a finding the same in a parent and its child: the line may move."""
        return (self.rule, self.file, " ".join(self.excerpt.split()))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "level": self.level.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(**{**data, "level": Risk(data["level"])})


def introduced(child: Iterable[Finding], parent: Iterable[Finding]) -> list[Finding]:
    """The child's findings that its parent does not have as many times (by `key`)."""
    left = Counter(f.key() for f in parent)
    new = []
    for finding in child:
        if left[finding.key()] > 0:
            left[finding.key()] -= 1
        else:
            new.append(finding)
    return new


@dataclass
class Result:
    """A node's review: its risk (the highest level found, never lowered by a model), the
    findings, and what the review cost."""

    risk: Risk
    findings: list[Finding]
    reviewers: list[str]
    details: dict[str, Any] = field(default_factory=dict)
    """Per reviewer: seconds, and for the FM reviewer its model, tokens, cost, reasons and
    its agreement with each finding."""


class Reviewer(Protocol):
    name: str

    def review(self, change: Any, found: list[Finding]) -> tuple[list[Finding], dict[str, Any]]:
        """Findings of this reviewer on a change (given what reviewers before it found) and
        what it reports of itself (seconds, tokens...)."""
