"""Parent-weight selectors, as in DGM: a parent is drawn from the candidates (admitted, scored,
owing nothing, not being evaluated) with probability proportional to its weight; the answer is
the best admitted member by score.

    score_child_prop  sigmoid(10 (score - 0.5)) / (1 + admitted children)   (DGM's default)
    score_prop        sigmoid(10 (score - 0.5))
    random            uniform
    best              the highest score (the oldest of equals)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dgm.search.population import Population


@dataclass(frozen=True)
class Candidates:
    """The members a parent may be drawn from, as columns."""

    names: Sequence[str]
    """Every member's id, by row."""
    rows: np.ndarray
    """The candidates' rows, oldest first."""
    score: np.ndarray
    """Resolved / attempted on the tasks each was evaluated on."""
    children: np.ndarray
    """Children admitted to the archive."""
    population: Population | None = None
    tasks: Sequence[str] = ()
    """The population and the search's tasks, for selectors that look further."""

    @classmethod
    def of(cls, *candidates: tuple[str, float, int]) -> Candidates:
        """From (id, score, children) triples."""
        names = [c[0] for c in candidates]
        return cls(
            names, np.arange(len(names)), np.array([c[1] for c in candidates], float),
            np.array([c[2] for c in candidates], float),
        )  # fmt: skip

    def __len__(self) -> int:
        return len(self.rows)

    def id(self, index: int) -> str:
        return self.names[int(self.rows[index])]


class ParentWeights:
    name = "parent-weights"
    needs: frozenset[str] = frozenset()

    def weights(self, candidates: Candidates) -> np.ndarray:
        raise NotImplementedError

    def pick(self, candidates: Candidates, rng: random.Random) -> str:
        weights = self.weights(candidates)
        total = float(weights.sum())
        if total <= 0:  # every weight is zero: no preference
            return candidates.id(rng.randrange(len(candidates)))
        # one uniform draw from the run's generator: the choice follows the run's seed
        index = int(np.searchsorted(np.cumsum(weights), rng.random() * total, side="right"))
        return candidates.id(min(index, len(candidates) - 1))


def sigmoid(scores: np.ndarray, sharpness: float, midpoint: float) -> np.ndarray:
    return 1 / (1 + np.exp(-sharpness * (scores - midpoint)))


class ScoreChildProp(ParentWeights):
    """DGM's rule: weight = sigmoid(10 (score - 0.5)) / (1 + admitted children)."""

    name = "score_child_prop"

    def __init__(self, sharpness: float = 10.0, midpoint: float = 0.5):
        self.sharpness, self.midpoint = sharpness, midpoint

    def weights(self, candidates: Candidates) -> np.ndarray:
        quality = sigmoid(candidates.score, self.sharpness, self.midpoint)
        return quality / (1 + candidates.children)


class ScoreProp(ParentWeights):
    """DGM's `score_prop`: weight = sigmoid(10 (score - 0.5)), children not counted."""

    name = "score_prop"

    def __init__(self, sharpness: float = 10.0, midpoint: float = 0.5):
        self.sharpness, self.midpoint = sharpness, midpoint

    def weights(self, candidates: Candidates) -> np.ndarray:
        return sigmoid(candidates.score, self.sharpness, self.midpoint)


class RandomSelector(ParentWeights):
    name = "random"

    def pick(self, candidates: Candidates, rng: random.Random) -> str:
        return candidates.id(rng.randrange(len(candidates)))


class Best(ParentWeights):
    """Always the highest score (ties: the oldest candidate)."""

    name = "best"

    def pick(self, candidates: Candidates, rng: random.Random) -> str:
        return candidates.id(int(np.argmax(candidates.score)))  # the first of equals: oldest
