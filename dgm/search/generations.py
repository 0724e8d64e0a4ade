"""DGM's search: staged evaluation decides every evaluation, and a parent-weight selector
picks the parents of the expansions, in one of two modes:

- async (HGM's way of using workers): a parent is drawn whenever a worker frees up;
- generational (DGM_outer.py): `generation_size` parents are drawn when a generation starts,
  and nothing new starts until all of it, its children's evaluations included, is done.

A child is kept only if it passed its own tests and "compiled": made at least one non-empty
patch on its first stage (is_compiled_self_improve in DGM's utils/evo_utils.py).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Literal

import numpy as np

from dgm.search.core import Search, Stage
from dgm.search.parents import Candidates, ParentWeights
from dgm.search.population import Population
from dgm.search.units import Unit


class Generations(Search):
    compiled = True

    def __init__(
        self,
        population: Population,
        stages: Sequence[Stage],
        selector: ParentWeights,
        *,
        mode: Literal["async", "generational"] = "async",
        generation_size: int = 2,
        rng: random.Random | None = None,
        evaluation_budget: int | None = None,
    ):
        super().__init__(population, stages, rng=rng, evaluation_budget=evaluation_budget)
        self.selector, self.mode, self.generation_size = selector, mode, generation_size
        self.name, self.needs = selector.name, selector.needs
        self.generation: list[str] = []  # parents of the current generation's expansions
        self._expansions_started = 0

    def candidates(self) -> Candidates:
        """Parents to choose from: admitted, scored, owing nothing and not being evaluated."""
        population = self.population
        c = population.columns()
        attempted = c["successes"] + c["failures"]
        allowed = (c["admitted"] > 0) & (attempted > 0)
        busy = [u.node for u in self.in_flight if u.kind == "evaluate"]
        allowed[[population.index[n] for n in [*self._owing, *busy]]] = False
        (rows,) = np.nonzero(allowed)
        score = c["successes"][rows] / attempted[rows]
        return Candidates(population.ids, rows, score, c["children"][rows], population, self.tasks)

    def _next(self) -> Unit | None:
        return self.owed_evaluation() or self._expansion()

    def _expansion(self) -> Unit | None:
        """An expansion of a parent the selector draws, at once (async) or for the whole
        generation when it starts (generational)."""
        if not self.may_expand:
            return None
        if self.mode == "async":
            candidates = self.candidates()
            if not len(candidates):
                return None
            return Unit("expand", self.selector.pick(candidates, self.rng))
        if self._expansions_started >= len(self.generation):
            if self.in_flight:
                return None  # the generation ends when all of it is done
            candidates = self.candidates()
            if not len(candidates):
                return None
            self.generation = [
                self.selector.pick(candidates, self.rng) for _ in range(self.generation_size)
            ]
            self._expansions_started = 0
        self._expansions_started += 1
        return Unit("expand", self.generation[self._expansions_started - 1])
