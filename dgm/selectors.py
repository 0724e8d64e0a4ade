"""Parent selection: which archive member the next expansion grows from.

Every selector sees the same candidates (admitted members with a score) and a random number
generator, so a run's choices follow its seed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Candidate:
    id: str
    score: float
    """Resolved / attempted on the tasks it was evaluated on."""
    children: int
    """Children admitted to the archive."""


class Selector(Protocol):
    name: str

    def select(self, candidates: list[Candidate], rng: random.Random) -> str:
        """One candidate's id (candidates is never empty)."""


class ScoreChildProp:
    """DGM's rule: weight = sigmoid(lambda (score - midpoint)) / (1 + admitted children)."""

    name = "score_child_prop"

    def __init__(self, sharpness: float = 10.0, midpoint: float = 0.5):
        self.sharpness, self.midpoint = sharpness, midpoint

    def weight(self, candidate: Candidate) -> float:
        sigmoid = 1 / (1 + math.exp(-self.sharpness * (candidate.score - self.midpoint)))
        return sigmoid / (1 + candidate.children)

    def select(self, candidates: list[Candidate], rng: random.Random) -> str:
        weights = [self.weight(c) for c in candidates]
        return rng.choices(candidates, weights=weights)[0].id


class RandomSelector:
    name = "random"

    def select(self, candidates: list[Candidate], rng: random.Random) -> str:
        return rng.choice(candidates).id


SELECTORS = {"score_child_prop": ScoreChildProp, "random": RandomSelector}


def make_selector(name: str, params: dict[str, Any]) -> Selector:
    try:
        return SELECTORS[name](**params)
    except TypeError as error:
        raise ValueError(f"selector {name}: {error}") from error
