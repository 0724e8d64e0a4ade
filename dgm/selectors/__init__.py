"""Selectors: which unit a run starts next, and which node is its answer.

Every selector answers the same two questions through one protocol, from what the policy knows
(its population, staged evaluation, budgets and a seeded random number generator, so a run's
choices follow its seed):

- `next_unit(policy, in_flight)`: expand which node, or evaluate which node on which task;
- `answer(population)`: the node the run reports.

Parent-weight selectors (DGM's `score_child_prop`, `score_prop`, `random`, `best`, `novelty`)
leave evaluation to staged evaluation and pick parents by weight; `cmp` (HGM) decides between
expanding and evaluating itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from dgm.policy import EvolutionPolicy, Population, Unit


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
    policy: EvolutionPolicy | None = None
    """The policy they come from (the population and its tasks), for selectors that look
    further than score and children."""

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


class Selector(Protocol):
    name: str
    needs: frozenset[str]
    """What the engine must supply beyond results: `code` (embeddings of members' code in
    `Population.code`), `verdicts` (the interestingness judge's, in `Member.interesting`)."""

    def next_unit(self, policy: EvolutionPolicy, in_flight: Collection[Unit]) -> Unit | None:
        """The unit to start now; None: nothing until a unit finishes."""

    def answer(self, population: Population) -> str | None:
        """The node the run reports (None: nothing scored yet)."""


def make_selector(name: str, params: dict[str, Any]) -> Selector:
    from dgm.selectors.cmp import CMP
    from dgm.selectors.novelty import Novelty
    from dgm.selectors.parents import Best, RandomSelector, ScoreChildProp, ScoreProp

    known = {s.name: s for s in (ScoreChildProp, ScoreProp, RandomSelector, Best, Novelty, CMP)}
    if name not in known:
        raise ValueError(f"unknown selector {name!r}; choose one of {', '.join(sorted(known))}")
    try:
        return known[name](**params)
    except TypeError as error:
        raise ValueError(f"selector {name}: {error}") from error
