"""Novelty: a parent's weight mixes its quality with how unlike the rest of the archive it is.

    weight = (1 - w) * sigmoid(10 (score - 0.5)) + w * novelty / max(novelty)

where novelty is the mean Euclidean distance to the k nearest other archive members (admitted,
scored) in one of two spaces:

- behaviour: the vector over the run's tasks of 1 (resolved), 0 (failed) and 0.5 (not tried,
  or a harness error);
- code: the embedding of the agent's code (`dgm.embeddings`; the engine supplies it, the
  simulator makes synthetic ones). Members without one have no novelty.

With `judge`, an FM judge of interestingness (`dgm.judge`, in the manner of OMNI) is asked of
each new child whether its change is worthwhile and new beside its nearest archive members; a
member judged not interesting has its weight multiplied by `judge_penalty`.

The nearest-neighbour distances are kept and updated as members join the archive, so a
decision in an archive of 10,000 members costs one pass over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from dgm.search.parents import Candidates, ParentWeights, sigmoid
from dgm.search.population import Population

_CHUNK = 1024  # rows of the distance matrix built at once


class Novelty(ParentWeights):
    name = "novelty"

    def __init__(
        self,
        space: Literal["behaviour", "code"] = "behaviour",
        k: int = 5,
        weight: float = 0.5,
        sharpness: float = 10.0,
        midpoint: float = 0.5,
        judge: bool = False,
        judge_penalty: float = 0.2,
    ):
        if k < 1 or not 0 <= weight <= 1 or space not in ("behaviour", "code"):
            raise TypeError("needs space behaviour or code, k >= 1 and 0 <= weight <= 1")
        if not 0 <= judge_penalty <= 1:
            raise TypeError("needs 0 <= judge_penalty <= 1")
        self.space, self.k, self.weight = space, k, weight
        self.sharpness, self.midpoint = sharpness, midpoint
        self.judge, self.judge_penalty = judge, judge_penalty
        self.needs = frozenset({"code"} if space == "code" else ()) | frozenset(
            {"verdicts"} if judge else ()
        )
        self._index: _Neighbours | None = None

    def weights(self, candidates: Candidates) -> np.ndarray:
        weights = sigmoid(candidates.score, self.sharpness, self.midpoint)
        if candidates.population is None:
            return weights
        if self.weight:
            novelty = self.novelty(candidates)
            top = float(novelty.max()) if len(novelty) else 0.0
            scaled = novelty / top if top > 0 else np.zeros_like(novelty)
            weights = (1 - self.weight) * weights + self.weight * scaled
        if self.judge:
            dull = candidates.population.columns()["dull"][candidates.rows] > 0
            weights = np.where(dull, weights * self.judge_penalty, weights)
        return weights

    def novelty(self, candidates: Candidates) -> np.ndarray:
        """Each candidate's mean distance to its k nearest other archive members."""
        assert candidates.population is not None
        index = self._index
        if index is None or index.tasks != list(candidates.tasks):
            index = self._index = _Neighbours(candidates.tasks, self.k, self.space)
        index.sync(candidates.population)
        return index.mean_distance(candidates.rows)


class _Neighbours:
    """The archive members' vectors (behaviour or code) and each one's k nearest distances."""

    def __init__(self, tasks: Sequence[str], k: int, space: str):
        self.tasks, self.k, self.space = list(tasks), k, space
        self.position = np.full(0, -1)  # population row -> position here (-1: absent)
        self.tried = np.zeros(0)  # how many results each vector was built from
        self.vectors: np.ndarray | None = None
        self.nearest = np.zeros((0, k))

    def sync(self, population: Population) -> None:
        c = population.columns()
        if len(self.position) < len(population.ids):
            grown = np.full(len(population.ids), -1)
            grown[: len(self.position)] = self.position
            self.position = grown
        in_archive = (c["admitted"] > 0) & (c["successes"] + c["failures"] > 0)
        if self.space == "code":
            in_archive &= np.array([n in population.code for n in population.ids], bool)
        (archive,) = np.nonzero(in_archive)
        where = self.position[archive]
        known = where >= 0
        if self.space == "behaviour" and np.any(
            c["tried"][archive[known]] != self.tried[where[known]]
        ):
            self.__init__(self.tasks, self.k, self.space)  # results changed: start again
            return self.sync(population)
        new = archive[~known]
        if not len(new):
            return None
        vectors = np.array([self._vector(population, population.ids[r]) for r in new])
        if self.vectors is None:
            self.vectors = np.zeros((0, vectors.shape[1]))
        if len(new) > 1 and len(self.vectors) < len(new):  # (re)building: all pairs at once
            self._add_many(new, vectors, c["tried"][new])
        else:
            for row, vector in zip(new, vectors, strict=True):
                self._add(int(row), vector, float(c["tried"][row]))
        return None

    def mean_distance(self, rows: np.ndarray) -> np.ndarray:
        where = self.position[rows] if len(rows) else np.zeros(0, int)
        nearest = np.where(np.isfinite(self.nearest[where]), self.nearest[where], np.nan)
        found = np.isfinite(nearest).any(axis=1) & (where >= 0)
        mean = np.zeros(len(rows))  # alone in the archive: nothing to differ from
        mean[found] = np.nanmean(nearest[found], axis=1)
        return mean

    def _vector(self, population: Population, node: str) -> np.ndarray:
        if self.space == "code":
            return population.code[node]
        results = population.members[node].results
        return np.array([_value(r.resolved if (r := results.get(t)) else None) for t in self.tasks])

    def _add(self, row: int, vector: np.ndarray, tried: float) -> None:
        distances = np.sqrt(((self.vectors - vector) ** 2).sum(axis=1))
        if len(self.nearest):  # the newcomer may be among each member's k nearest
            worst = self.nearest.argmax(axis=1)
            closer = distances < self.nearest[np.arange(len(self.nearest)), worst]
            self.nearest[np.nonzero(closer)[0], worst[closer]] = distances[closer]
        own = np.full(self.k, np.inf)
        kept = np.sort(distances)[: self.k]
        own[: len(kept)] = kept
        self._append(np.array([row]), vector[None, :], np.array([tried]), own[None, :])

    def _add_many(self, rows: np.ndarray, vectors: np.ndarray, tried: np.ndarray) -> None:
        everything = np.vstack([self.vectors, vectors])
        squared = (everything**2).sum(axis=1)
        nearest = np.full((len(everything), self.k), np.inf)
        take = min(self.k, len(everything) - 1)
        for start in range(0, len(everything), _CHUNK):
            block = everything[start : start + _CHUNK]
            d2 = squared[start : start + _CHUNK, None] + squared[None, :] - 2 * block @ everything.T
            d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
            if take:
                part = np.partition(d2, take - 1, axis=1)[:, :take]
                nearest[start : start + len(block), :take] = np.sqrt(np.maximum(part, 0))
        self.position[rows] = np.arange(len(self.tried), len(self.tried) + len(rows))
        self.tried = np.concatenate([self.tried, tried])
        self.vectors, self.nearest = everything, nearest

    def _append(
        self, rows: np.ndarray, vectors: np.ndarray, tried: np.ndarray, nearest: np.ndarray
    ) -> None:
        self.position[rows] = np.arange(len(self.tried), len(self.tried) + len(rows))
        self.tried = np.concatenate([self.tried, tried])
        self.vectors = np.vstack([self.vectors, vectors])
        self.nearest = np.vstack([self.nearest, nearest])


def _value(result: bool | None) -> float:
    return 0.5 if result is None else float(result)
