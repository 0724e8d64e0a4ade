"""Parent-weight selectors, as in DGM: staged evaluation decides every evaluation; a parent
for the next expansion is drawn from the admitted, scored members with probability
proportional to its weight. The answer is the best admitted member by score."""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np

from dgm.selectors import Candidates

if TYPE_CHECKING:
    from dgm.policy import EvolutionPolicy, Population, Unit


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

    def next_unit(self, policy: EvolutionPolicy, in_flight: Collection[Unit]) -> Unit | None:
        return policy.owed_evaluation(in_flight) or policy.parent_expansion(in_flight, self.pick)

    def answer(self, population: Population) -> str | None:
        best, _ = population.best()
        return best.id if best else None


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
